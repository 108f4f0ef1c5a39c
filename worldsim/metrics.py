"""Fidelity and physics metrics on uint8 RGB frames ``[..., H, W, 3]``: NumPy and OpenCV, CPU.

- image similarity: :func:`psnr`, :func:`ssim`;
- a ball parser for Balls frames (the PhyWorld method): :func:`parse_balls` finds each ball by its
  colour, with centre = the centroid of its colour coverage and radius = ``sqrt(area / pi)``, in
  world units;
- physics read from parsed balls: :func:`velocity_error`, :func:`collision_drift`,
  :func:`fit_gravity`, :func:`frame_valid`;
- motion masks and the Physics-IQ scores: :func:`motion_masks`, :func:`motion_scores`,
  :func:`physics_iq_score`.

Every function takes frames as the envs and the simulator give them; tests check each on synthetic
cases with known answers (``tests/test_metrics.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

PSNR_CAP = 60.0  # dB given to identical frames


def as_float(frames) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim < 3 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [..., H, W, 3], got {frames.dtype} {frames.shape}")
    return frames.astype(np.float64)


def check_pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = as_float(a), as_float(b)
    if a.shape != b.shape:
        raise ValueError(f"frames to compare must have the same shape, got {a.shape} and {b.shape}")
    return a, b


# ---------------------------------------------------------------------------------- image similarity


def psnr(a, b) -> np.ndarray:
    """PSNR in dB of frames ``a`` and ``b`` (peak 255), one value per frame: shape ``[...]`` of
    the leading axes (a float for one frame); identical frames get ``PSNR_CAP`` = 60 dB."""
    a, b = check_pair(a, b)
    mse = ((a - b) ** 2).mean(axis=(-3, -2, -1))
    with np.errstate(divide="ignore"):
        value = np.minimum(PSNR_CAP, 10 * np.log10(255.0**2 / mse))
    return value if value.ndim else float(value)


def ssim(a, b, sigma: float = 1.5) -> np.ndarray:
    """Structural similarity (Wang et al. 2004) with a Gaussian window of ``sigma`` pixels, per
    channel and averaged over pixels and channels; one value per frame as in :func:`psnr`."""
    a, b = check_pair(a, b)
    lead = a.shape[:-3]
    a = a.reshape(-1, *a.shape[-3:])
    b = b.reshape(-1, *b.shape[-3:])
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(x):
        return cv2.GaussianBlur(x, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)

    values = []
    for x, y in zip(a, b):
        mx, my = blur(x), blur(y)
        vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
        index = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
        values.append(index.mean())
    values = np.array(values).reshape(lead)
    return values if values.ndim else float(values)


# ---------------------------------------------------------------------------------------- ball parser


@dataclass
class ParsedBalls:
    """Balls found in frames ``[T]`` by colour; ``n`` = the number of colours looked for.

    ``present`` bool ``[T, n]``; ``centers`` ``[T, n, 2]`` and ``radii`` ``[T, n]`` in world units
    (NaN where absent); ``colors`` ``[T, n, 3]``: the mean RGB of the ball's fully covered pixels
    (NaN where it has none); ``coverage`` ``[T, n]``: its area in pixels.
    """

    present: np.ndarray
    centers: np.ndarray
    radii: np.ndarray
    colors: np.ndarray
    coverage: np.ndarray


def parse_balls(frames, colors, world_height: float, background=None, min_pixels: float = 1.0) -> ParsedBalls:
    """Finds each ball of ``colors`` (uint8 ``[n, 3]``) in ``frames`` (uint8 ``[T, H, W, 3]``).

    A pixel's coverage by colour ``c`` over the background ``b`` is the least-squares
    ``alpha = <p - b, c - b> / |c - b|^2`` in [0, 1], counted where the pixel is that mix
    (``|p - b - alpha (c - b)| < 0.15 alpha |c - b| + 8``: an edge of another colour is not) and
    ``alpha >= 0.1``. Anti-aliased edges so
    count by the fraction the ball covers: the area is the summed coverage, the centre its weighted
    centroid. A ball is present with at least ``min_pixels`` of area. ``background``: the frame with
    no balls, uint8 ``[H, W, 3]`` or ``[T, H, W, 3]`` (default: Balls' plain background colour).
    Pixel ``(i, j)`` covers world ``x`` in ``[j, j + 1) / s``, ``y`` in ``world_height - [i, i + 1) / s``
    with ``s = H / world_height`` pixels per unit, as :func:`worldsim.envs.balls.draw` draws.
    """
    from worldsim.envs.balls import BACKGROUND

    frames = as_float(frames)
    if frames.ndim == 3:
        frames = frames[None]
    t, height, width = frames.shape[:3]
    colors = np.asarray(colors, dtype=np.float64).reshape(-1, 3)
    if background is None:
        background = np.broadcast_to(np.array(BACKGROUND, dtype=np.uint8), (height, width, 3))
    background = np.broadcast_to(as_float(background), frames.shape)
    scale = height / world_height
    rows = (np.arange(height) + 0.5)[:, None]
    cols = (np.arange(width) + 0.5)[None, :]
    n = len(colors)
    present = np.zeros((t, n), bool)
    centers = np.full((t, n, 2), np.nan)
    radii = np.full((t, n), np.nan)
    found_colors = np.full((t, n, 3), np.nan)
    coverage = np.zeros((t, n))
    offset = frames - background
    for k, color in enumerate(colors):
        direction = color - background  # [T, H, W, 3]
        length2 = np.maximum((direction**2).sum(-1), 1e-9)
        alpha = np.clip((offset * direction).sum(-1) / length2, 0.0, 1.0)
        residual = np.linalg.norm(offset - alpha[..., None] * direction, axis=-1)
        alpha = np.where((residual < 0.15 * alpha * np.sqrt(length2) + 8) & (alpha >= 0.1), alpha, 0.0)
        area = alpha.sum(axis=(1, 2))
        coverage[:, k] = area
        for i in np.flatnonzero(area >= min_pixels):
            w = alpha[i]
            cy, cx = (w * rows).sum() / area[i], (w * cols).sum() / area[i]
            present[i, k] = True
            centers[i, k] = (cx / scale, world_height - cy / scale)
            radii[i, k] = np.sqrt(area[i] / np.pi) / scale
            core = w > 0.9
            if core.any():
                found_colors[i, k] = frames[i][core].mean(axis=0)
    return ParsedBalls(present, centers, radii, found_colors, coverage)


# --------------------------------------------------------------------------------- physics from balls


def finite_velocities(centers: np.ndarray, fps: float) -> np.ndarray:
    """Central-difference velocities ``[T, n, 2]`` (world units/s) of centres ``[T, n, 2]``; NaN at
    the first and last frame and wherever a neighbour is NaN (an absent ball)."""
    velocities = np.full(centers.shape, np.nan)
    velocities[1:-1] = (centers[2:] - centers[:-2]) * fps / 2
    return velocities


def velocity_error(parsed: ParsedBalls, true_velocities, fps: float, frames: slice = slice(None)) -> tuple[float, int]:
    """PhyWorld's velocity error: the mean over balls and ``frames`` of ``|v_t - v_hat_t|``
    (world units/s), ``v_hat`` from central differences of parsed centres, ``v`` the true
    velocities ``[T, n, 2]``. Returns ``(error, count)``; absent balls are left out (they count as
    permanence violations instead), so ``count`` says how many (frame, ball) pairs it averaged."""
    estimated = finite_velocities(parsed.centers, fps)[frames]
    gaps = np.linalg.norm(estimated - np.asarray(true_velocities)[frames], axis=-1)
    gaps = gaps[np.isfinite(gaps)]
    return (float(gaps.mean()) if gaps.size else float("nan")), int(gaps.size)


def collisions(positions: np.ndarray, radii: np.ndarray, touch: float = 1e-3) -> list[int]:
    """Frames at which two balls first touch (true state: positions ``[T, n, 2]``, radii ``[n]``)."""
    found = []
    n = positions.shape[1]
    for i in range(n):
        for j in range(i + 1, n):
            gap = np.linalg.norm(positions[:, i] - positions[:, j], axis=-1) - radii[i] - radii[j]
            touching = gap <= touch
            found += [int(t) for t in np.flatnonzero(touching[1:] & ~touching[:-1]) + 1]
            if touching[0]:
                found.append(0)
    return sorted(found)


def near_wall(positions: np.ndarray, radii: np.ndarray, world_size, margin: float = 0.05) -> np.ndarray:
    """bool ``[T]``: some ball is within ``margin`` of a wall (world units), or within the distance
    it travels to the next frame, so that a bounce between two frames counts too."""
    width, height = world_size
    travel = np.zeros(positions.shape[:2])
    travel[:-1] = np.linalg.norm(np.diff(positions, axis=0), axis=-1)
    reach = (margin + travel)[..., None]
    low = (positions - radii[None, :, None]) <= reach
    high = positions + radii[None, :, None] >= np.array([width, height]) - reach
    return (low | high).any(axis=(1, 2))


def collision_drift(parsed: ParsedBalls, positions, radii, world_size, fps: float, span: int = 2) -> list[dict[str, float]]:
    """Momentum and kinetic-energy drift across each ball-ball collision, read from parsed frames.

    For each collision in the true ``positions [T, n, 2]`` (ball radii ``[n]``) at frame ``c``,
    velocities are taken by central differences at ``c - span`` and ``c + span``, masses as
    ``pi r^2`` of the parsed radii; collisions with a ball near a wall in between, or a ball not
    found, are skipped. Returns per collision ``{"momentum": |P1 - P0| / sum_i m_i |v0_i|,
    "energy": |E1 - E0| / E0}`` (momentum is scaled by the balls' summed momentum magnitudes, as the
    total P0 of a head-on collision can be near zero): both 0 for the true elastic physics.
    """
    positions, radii = np.asarray(positions), np.asarray(radii)
    velocities = finite_velocities(parsed.centers, fps)
    walls = near_wall(positions, radii, world_size)
    drifts = []
    for c in collisions(positions, radii):
        before, after = c - span, c + span
        if before < 1 or after + 1 >= len(positions) or walls[before - 1 : after + 2].any():
            continue
        masses = np.pi * np.nanmean(parsed.radii[before - 1 : after + 2], axis=0) ** 2
        v0, v1 = velocities[before], velocities[after]
        if not (np.isfinite(v0).all() and np.isfinite(v1).all() and np.isfinite(masses).all()):
            continue
        p0, p1 = (masses[:, None] * v0).sum(0), (masses[:, None] * v1).sum(0)
        e0, e1 = (masses * (v0**2).sum(-1)).sum() / 2, (masses * (v1**2).sum(-1)).sum() / 2
        scale = (masses * np.linalg.norm(v0, axis=-1)).sum()
        drifts.append({"momentum": float(np.linalg.norm(p1 - p0) / max(scale, 1e-9)), "energy": float(abs(e1 - e0) / max(e0, 1e-9))})
    return drifts


def fit_gravity(heights, true_vertical_velocities, fps: float, min_frames: int = 3) -> float:
    """Gravity (units/s^2, positive down) fitted to a ball's parsed heights ``[T]`` by least squares:
    one ``g`` shared by every free-flight arc, each arc ``y = a + b t - g t^2 / 2`` with its own
    ``a, b``. Arcs are split where the true vertical velocity ``[T]`` jumps up (a bounce); arcs
    shorter than ``min_frames`` and NaN heights are left out. NaN when nothing fits."""
    heights, vy = np.asarray(heights, dtype=np.float64), np.asarray(true_vertical_velocities, dtype=np.float64)
    arc = np.concatenate([[0], np.cumsum(vy[1:] > vy[:-1] + 1e-6)])
    keep = np.isfinite(heights)
    arcs = [a for a in np.unique(arc[keep]) if (keep & (arc == a)).sum() >= min_frames]
    if not arcs:
        return float("nan")
    t = np.arange(len(heights)) / fps
    rows = keep & np.isin(arc, arcs)
    design = [-(t[rows] ** 2) / 2]
    for a in arcs:
        inside = (arc[rows] == a).astype(np.float64)
        design += [inside, inside * t[rows]]
    solution, *_ = np.linalg.lstsq(np.stack(design, axis=1), heights[rows], rcond=None)
    return float(solution[0])


def frame_valid(parsed: ParsedBalls, expected, frames, background, radii, world_height: float) -> np.ndarray:
    """bool ``[T]``: a frame is valid when it keeps its balls and has not blown up.

    ``expected`` bool ``[n]`` marks the colours that should be there. A frame keeps its balls when
    every expected ball is found with an area within 1/3..3x of ``pi r^2`` (true ``radii [n]``)
    and no other colour of the palette is; it has not blown up when at least half its pixels are
    within 40 (RGB distance) of the ``background``.
    """
    scale = frames.shape[1] / world_height
    true_area = np.pi * (np.asarray(radii) * scale) ** 2
    expected = np.asarray(expected, bool)
    ratio = parsed.coverage / np.maximum(true_area, 1e-9)
    kept = (((ratio >= 1 / 3) & (ratio <= 3)) | ~expected).all(axis=1) & ~(parsed.present & ~expected).any(axis=1)
    distance = np.linalg.norm(as_float(frames) - as_float(np.broadcast_to(background, frames.shape)), axis=-1)
    calm = (distance < 40).mean(axis=(1, 2)) >= 0.5
    return kept & calm


# -------------------------------------------------------------------------------------- motion masks


def motion_masks(frames, threshold: float = 20.0) -> np.ndarray:
    """bool ``[T - 1, H, W]``: pixels whose colour changed by more than ``threshold`` (largest
    channel difference, 0-255) from the frame before."""
    frames = as_float(frames)
    return np.abs(np.diff(frames, axis=0)).max(axis=-1) > threshold


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two masks (bool or counts, min / max); 1 when both are empty."""
    union = np.maximum(a, b).sum()
    return 1.0 if union == 0 else float(np.minimum(a, b).sum() / union)


MOTION_METRICS = ("spatial_iou", "spatiotemporal_iou", "weighted_spatial_iou", "mse")


def motion_scores(real, generated, threshold: float = 20.0) -> dict[str, float]:
    """Physics-IQ's four scores of ``generated`` frames against ``real`` ones (both ``[T, H, W, 3]``):

    - ``spatial_iou``: IoU of where anything moved (each video's masks OR-ed over time);
    - ``spatiotemporal_iou``: the mean over frames of each frame's mask IoU;
    - ``weighted_spatial_iou``: IoU of how often each pixel moved (sum of min / sum of max of counts);
    - ``mse``: mean squared pixel error, pixels scaled to [0, 1].
    """
    a, b = check_pair(real, generated)
    ma, mb = motion_masks(real, threshold), motion_masks(generated, threshold)
    return {
        "spatial_iou": iou(ma.any(0), mb.any(0)),
        "spatiotemporal_iou": float(np.mean([iou(x, y) for x, y in zip(ma, mb)])),
        "weighted_spatial_iou": iou(ma.sum(0), mb.sum(0)),
        "mse": float((((a - b) / 255.0) ** 2).mean()),
    }


def physics_iq_score(scores: dict[str, float], ceiling: dict[str, float]) -> float:
    """One score in [0, 100]: each IoU as a fraction of its ``ceiling`` (the physical variance's
    score, two real takes of the same scene), MSE as ``ceiling / mse``, each capped at 1, averaged
    and scaled so that matching the physical variance scores 100 (Physics-IQ's normalisation)."""
    parts = [min(1.0, scores[k] / max(ceiling[k], 1e-12)) for k in MOTION_METRICS[:3]]
    parts.append(min(1.0, (ceiling["mse"] + 1e-12) / (scores["mse"] + 1e-12)))
    return 100.0 * float(np.mean(parts))
