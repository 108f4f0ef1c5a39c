"""The pygame viewer: a person plays a world model's dream with the keyboard (``worldsim play``).

The dream is a :class:`~worldsim.envs.dream.DreamEnv`; beside it runs its real twin (the world the
model learned) driven by the same actions, with a strip of the per-frame error between the two, so
one sees where the dream drifts. Keys (``H`` shows them in the window):

===================  ===========================================================================
arrows / WASD        Balls: push the red ball (no key: no push)
left / right (A/D)   CartPole: push the cart (no key: left and right in turn, CartPole has no no-op)
                     (each world's keys are its record's ``keys`` in :mod:`worldsim.envs.worlds`)
``R``                restart from new real frames
``P``                pause
``Tab``              show or hide the real twin and the error strip
``T``                type a prompt; ``Enter`` dreams from it (no real twin), ``Esc`` cancels
``Backspace``        rewind ``rewind_steps`` steps (the simulator's forks; the twin is re-run)
``V``                start or stop recording the window to an mp4 (path printed; a ``.keys``
                     file beside it replays the session)
``H``                help
``Esc``              quit
===================  ===========================================================================

Held keys are sampled once per frame. ``replay=FILE`` plays a key or action sequence, one line per
frame: key names held or pressed that frame (``right``, ``up left``, ``r``, ``tab``, ...; empty:
none), an integer action, or ``prompt: TEXT``; ``#`` starts a comment. ``max_steps=N`` stops after N
model steps, ``screenshot=PNG`` saves the last window: that is how tests drive it.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np

from worldsim.atomic import atomic_write
from worldsim.data.collect import record_episode
from worldsim.data.policies import make_policy
from worldsim.envs.dream import DreamEnv, DreamState
from worldsim.envs.worlds import BY_ID, KeyMap
from worldsim.errors import MissingFileError, UserError

COMMANDS = ("h", "r", "p", "tab", "t", "backspace", "v", "escape")
BACKGROUND, PANEL, TEXT, DIM = (18, 18, 22), (40, 40, 48), (235, 235, 235), (150, 150, 160)
STRIP_HEIGHT, LABEL_HEIGHT, MARGIN = 48, 22, 12


HELP = (
    "R  restart from real frames",
    "P  pause",
    "Tab  real twin + error strip",
    "T  prompt (Enter: dream it)",
    "Backspace  rewind",
    "V  record mp4",
    "H  this help",
    "Esc  quit",
)


@dataclass
class Input:
    """One frame's input: keys held (actions), keys pressed (commands), a forced action, a prompt."""

    held: tuple[str, ...] = ()
    pressed: tuple[str, ...] = ()
    action: int | None = None
    prompt: str | None = None

    def line(self) -> str:
        """This input as a line of a replay file."""
        if self.prompt is not None:
            return f"prompt: {self.prompt}"
        if self.action is not None:
            return str(self.action)
        return " ".join((*self.held, *self.pressed))


def read_replay(path: str | Path, keymap: KeyMap) -> list[Input]:
    """The frames of a replay file (see the module docstring); an unknown key name is an error."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"replay file {path} does not exist")
    frames = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("prompt:") else raw.strip()
        if line.startswith("prompt:"):
            frames.append(Input(prompt=line.removeprefix("prompt:").strip()))
        elif line.lstrip("-").isdigit():
            frames.append(Input(action=int(line)))
        else:
            names = line.lower().split()
            unknown = [n for n in names if n not in keymap.keys and n not in COMMANDS]
            if unknown:
                accepted = ", ".join([*keymap.keys, *COMMANDS])
                raise UserError(f"{path}:{number}: unknown key {unknown[0]!r}; accepted: {accepted}, an integer action, or 'prompt: TEXT'")
            frames.append(Input(tuple(n for n in names if n in keymap.keys), tuple(n for n in names if n in COMMANDS)))
    return frames


@dataclass
class Snapshot:
    """What a rewind restores: the dream's state (:meth:`DreamEnv.snapshot`) and bookkeeping at ``step``."""

    step: int
    dream: DreamState
    frame: np.ndarray
    reward: float
    errors: list[float]


@dataclass
class PlaySummary:
    """``frames_per_second``: steps over the whole run's wall time (start, pauses, compilation and
    restarts included); ``step_frames_per_second``: the viewer's counter, one over the median time
    of a step (the model's frame, the twin's and the bookkeeping), the first step left out (it
    compiles a compiled model)."""

    steps: int
    seconds: float
    frames_per_second: float
    screenshot: Path | None = None
    recordings: list[Path] = field(default_factory=list)
    step_frames_per_second: float = 0.0


class Viewer:
    """A window where a person drives ``model``'s dream (see the module docstring).

    Args:
        model: a shipped model's name, a model or run folder, or a WorldModel.
        device: where the model runs.
        sampler_steps: denoising steps per frame (default: the model's).
        seed: the first episode's seed (later restarts count up from it).
        fps: frames per second to pace at (default: the model's; 0: as fast as it goes).
        side_by_side: start with the real twin and the error strip shown.
        record_dir: where ``V`` writes mp4s.
        rewind_steps: how far ``Backspace`` goes back.
        compile: compile the model's cached passes (``DreamEnv(compile=True)``): the first step
            compiles for 10-30 s, then frames come 1.5-1.7x faster on CPU (speed bench, shipped balls).
        precision: ``"float32"`` or ``"bfloat16"`` (``DreamEnv(precision=...)``).
        world_kwargs: the twin's world arguments (Balls: ``scenario=``, ``frame_size=``, ...).
    """

    def __init__(
        self,
        model,
        device="cpu",
        sampler_steps=None,
        seed=0,
        fps=None,
        side_by_side=True,
        record_dir="runs/play",
        rewind_steps=5,
        compile=False,
        precision="float32",
        **world_kwargs,
    ):
        self.env = DreamEnv(model=model, device=device, sampler_steps=sampler_steps, compile=compile, precision=precision, **world_kwargs)
        config = self.env.model.config
        self.env_id = config.env_id
        if self.env_id not in BY_ID:
            raise UserError(f"no key map for {self.env_id}; the viewer plays {', '.join(BY_ID)}")
        self.keymap: KeyMap = BY_ID[self.env_id].keys
        frame_size = tuple(self.env.observation_space.shape[:2])
        self.real = gym.make(self.env_id, **config.world_kwargs(frame_size=frame_size, **world_kwargs))
        self.policy = make_policy("auto", self.real)
        self.frame_size = frame_size
        self.fps = config.fps if fps is None else fps
        self.device = str(device)
        self.sampler_steps = self.env.sampler_steps
        self.side_by_side, self.record_dir, self.rewind_steps = side_by_side, Path(record_dir), rewind_steps
        self.seed = seed
        self.paused = self.show_help = False
        self.typing: str | None = None  # the prompt being typed, or None
        self.writer = None
        self.recording: Path | None = None
        self.keys_log: list[str] = []
        self.recordings: list[Path] = []

    # ---------------------------------------------------------------------------- the world side

    def start(self, prompt: str | None = None) -> None:
        """A new episode: from real frames of the twin (seeded), or from ``prompt`` alone."""
        self.episode_seed = self.seed
        if prompt is None:
            frame, _ = self.env.reset(seed=self.seed, options={"context": self.restart_twin()})
        else:
            frame, _ = self.env.reset(seed=self.seed, options={"prompt": prompt})
            self.real_frame, self.real_done = None, True
        self.frame, self.reward, self.step_count = frame, 0.0, 0
        self.actions: list[int] = []
        self.errors: list[float] = []
        self.snapshots: deque[Snapshot] = deque(maxlen=64)
        self.snapshot()
        self.seed += 1

    def step(self, action: int) -> None:
        self.frame, self.reward, terminated, truncated, _ = self.env.step(action)
        self.actions.append(action)
        self.step_count += 1
        self.step_twin(action)
        if self.real_frame is not None:
            self.errors.append(float(np.abs(self.frame.astype(np.int16) - self.real_frame).mean() / 255))
        self.snapshot()
        if terminated or truncated:
            print(f"dream episode ended at step {self.step_count} ({'terminated' if terminated else 'horizon'}); restarting")
            self.start()

    def restart_twin(self):
        """Resets the twin with the episode's seed and runs the ``auto`` policy up to the dream's
        first frame; returns those frames as an Episode, the dream's starting context."""
        context = record_episode(self.real, self.policy, self.episode_seed, max_steps=self.env.context_frames - 1)
        self.real_frame, self.real_done = context.frames[-1], False
        return context

    def step_twin(self, action: int) -> None:
        if self.real_frame is not None and not self.real_done:
            self.real_frame, _, terminated, truncated, _ = self.real.step(action)
            self.real_done = terminated or truncated

    def snapshot(self) -> None:
        self.snapshots.append(Snapshot(self.step_count, self.env.snapshot(), self.frame, self.reward, list(self.errors)))

    def rewind(self) -> None:
        """Back ``rewind_steps`` steps: the dream from its snapshot, the twin re-run to match."""
        while len(self.snapshots) > 1 and self.snapshots[-1].step > self.step_count - self.rewind_steps:
            self.snapshots.pop()
        back = self.snapshots[-1]
        self.env.restore(back.dream)  # the snapshot stays for another rewind
        self.frame, self.reward, self.step_count, self.errors = back.frame, back.reward, back.step, list(back.errors)
        self.actions = self.actions[: back.step]
        if self.real_frame is not None:  # the twin is deterministic: re-run it from its seed
            self.restart_twin()
            for action in self.actions:
                self.step_twin(action)

    # ------------------------------------------------------------------------------------- input

    def read_input(self, pygame, replay: deque[Input]) -> Input:
        """This frame's input: the next replay line, else the keyboard."""
        if replay:
            for event in pygame.event.get():  # keep the window alive; a close still quits
                if event.type == pygame.QUIT:
                    return Input(pressed=("escape",))
            return replay.popleft()
        pressed, prompt = [], None
        for event in pygame.event.get():
            if event.type == pygame.QUIT:
                pressed.append("escape")
            elif event.type == pygame.KEYDOWN and self.typing is not None:
                if event.key == pygame.K_RETURN:
                    prompt, self.typing = self.typing, None
                elif event.key == pygame.K_ESCAPE:
                    self.typing = None
                elif event.key == pygame.K_BACKSPACE:
                    self.typing = self.typing[:-1]
                elif event.unicode and event.unicode.isprintable():
                    self.typing += event.unicode
            elif event.type == pygame.KEYDOWN:
                name = pygame.key.name(event.key)
                if name in COMMANDS:
                    pressed.append(name)
        if prompt is not None:
            return Input(prompt=prompt)
        if self.typing is not None:
            return Input(pressed=tuple(pressed))
        state = pygame.key.get_pressed()
        held = tuple(name for name in self.keymap.keys if state[pygame.key.key_code(name)])
        return Input(held, tuple(pressed))

    def apply(self, command: str) -> bool:
        """Runs a command key; False means quit."""
        if command == "escape":
            return False
        if command == "h":
            self.show_help = not self.show_help
        elif command == "p":
            self.paused = not self.paused
        elif command == "tab":
            self.side_by_side = not self.side_by_side
        elif command == "r":
            self.start()
        elif command == "t":
            self.typing = ""
        elif command == "backspace":
            self.rewind()
        elif command == "v":
            self.toggle_recording()
        return True

    # ----------------------------------------------------------------------------------- drawing

    def layout(self, window: tuple[int, int]) -> tuple[int, int]:
        """The whole-number upscaling that fits the panels in ``window``, and the panel count."""
        panels = 2 if self.side_by_side else 1
        height, width = self.frame_size
        extra_height = 2 * LABEL_HEIGHT + (STRIP_HEIGHT if self.side_by_side else 0) + 3 * MARGIN
        scale = min((window[0] - (panels + 1) * MARGIN) // (panels * width), (window[1] - extra_height) // height)
        return max(1, scale), panels

    def window_size(self, pygame) -> tuple[int, int]:
        """A window that fits the screen: the largest whole upscaling up to 12x."""
        info = pygame.display.Info()
        screen = (info.current_w, info.current_h) if info.current_w > 0 else (1280, 800)
        height, width = self.frame_size
        extra_height = 2 * LABEL_HEIGHT + STRIP_HEIGHT + 3 * MARGIN
        scale = max(1, min(12, (int(0.9 * screen[0]) - 3 * MARGIN) // (2 * width), (int(0.8 * screen[1]) - extra_height) // height))
        return 2 * width * scale + 3 * MARGIN, height * scale + extra_height

    def draw(self, pygame, screen, font, fps: float) -> None:
        screen.fill(BACKGROUND)
        scale, panels = self.layout(screen.get_size())
        height, width = self.frame_size
        size = (width * scale, height * scale)
        x0 = (screen.get_width() - panels * size[0] - (panels - 1) * MARGIN) // 2
        shown = [("dream", self.frame)]
        if self.side_by_side:
            shown.append(("real" if self.real_frame is not None else "real: none for a prompt", self.real_frame))
        for i, (label, frame) in enumerate(shown):
            x = x0 + i * (size[0] + MARGIN)
            screen.blit(font.render(label, True, DIM), (x, MARGIN))
            top = MARGIN + LABEL_HEIGHT
            if frame is None:
                pygame.draw.rect(screen, PANEL, (x, top, *size))
                continue
            surface = pygame.surfarray.make_surface(np.ascontiguousarray(frame.transpose(1, 0, 2)))
            screen.blit(pygame.transform.scale(surface, size), (x, top))  # scale() is nearest neighbour
        # The status line sits at the bottom, so it never hides the dream.
        status = f"{fps:4.1f} fps  step {self.step_count}  reward {self.reward:+.2f}  k={self.sampler_steps}  {self.device}"
        status += "  PAUSED" * self.paused + "  REC" * (self.recording is not None) + "  (H: help)"
        screen.blit(font.render(status, True, TEXT), (MARGIN, screen.get_height() - LABEL_HEIGHT))
        if self.side_by_side:
            self.error_strip(pygame, screen, font, MARGIN + LABEL_HEIGHT + size[1] + MARGIN)
        if self.show_help:
            self.text_box(pygame, screen, font, [self.keymap.help, *HELP], (x0 + 4, MARGIN + LABEL_HEIGHT + 4))
        if self.typing is not None:
            self.text_box(pygame, screen, font, [f"prompt: {self.typing}_"], (MARGIN, screen.get_height() - LABEL_HEIGHT - 28))

    def error_strip(self, pygame, screen, font, top: int) -> None:
        """Bars of the mean absolute dream-real error per step (newest right), 0 to 0.25 of full scale."""
        width = screen.get_width() - 2 * MARGIN
        pygame.draw.rect(screen, PANEL, (MARGIN, top, width, STRIP_HEIGHT))
        bar = 4
        recent = self.errors[-(width // bar) :]
        for i, error in enumerate(recent):
            level = min(1.0, error / 0.25)
            colour = (int(80 + 175 * level), int(200 - 150 * level), 80)
            h = max(1, int(level * (STRIP_HEIGHT - 4)))
            pygame.draw.rect(screen, colour, (MARGIN + i * bar, top + STRIP_HEIGHT - 2 - h, bar - 1, h))
        text = f"|dream - real| {recent[-1]:.3f}" if recent else "|dream - real|: no real twin"
        screen.blit(font.render(text, True, TEXT), (MARGIN + 4, top + 2))

    @staticmethod
    def text_box(pygame, screen, font, lines, at) -> None:
        rendered = [font.render(line, True, TEXT) for line in lines]
        box = pygame.Surface((max(r.get_width() for r in rendered) + 8, 18 * len(rendered) + 6), pygame.SRCALPHA)
        box.fill((0, 0, 0, 170))
        for i, r in enumerate(rendered):
            box.blit(r, (4, 3 + 18 * i))
        screen.blit(box, at)

    # --------------------------------------------------------------------------------- recording

    def toggle_recording(self) -> None:
        if self.writer is None:
            self.record_dir.mkdir(parents=True, exist_ok=True)
            self.recording = self.record_dir / time.strftime("play-%Y%m%d-%H%M%S.mp4")
            self.keys_log = []
            print(f"recording to {self.recording}")
            return  # the writer opens on the next frame, at the window's size
        self.writer.release()
        with atomic_write(self.recording.with_suffix(".keys"), "w") as f:
            f.write("\n".join(self.keys_log) + "\n")
        print(f"wrote {self.recording} and {self.recording.with_suffix('.keys')}")
        self.recordings.append(self.recording)
        self.writer, self.recording = None, None

    def record(self, pygame, screen, user: Input) -> None:
        import cv2

        frame = pygame.surfarray.array3d(screen).transpose(1, 0, 2)[:, :, ::-1]  # RGB -> OpenCV's BGR
        if self.writer is None:
            self.size = (frame.shape[1] // 2 * 2, frame.shape[0] // 2 * 2)  # even sizes for mp4
            self.writer = cv2.VideoWriter(str(self.recording), cv2.VideoWriter_fourcc(*"mp4v"), self.fps or 10, self.size)
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_NEAREST)
        self.writer.write(np.ascontiguousarray(frame))
        self.keys_log.append(Input(user.held, tuple(k for k in user.pressed if k != "v"), user.action, user.prompt).line())

    # -------------------------------------------------------------------------------------- loop

    def run(self, replay: str | Path | None = None, max_steps: int | None = None, screenshot: str | Path | None = None) -> PlaySummary:
        """Opens the window and plays until ``Esc`` (or ``max_steps`` model steps); returns what it did."""
        import pygame

        inputs = deque(read_replay(replay, self.keymap) if replay is not None else ())
        pygame.display.init()
        pygame.font.init()
        screen = pygame.display.set_mode(self.window_size(pygame), pygame.RESIZABLE)
        pygame.display.set_caption(f"worldsim play: {self.env_id} (H for help)")
        font = pygame.font.Font(None, 20)
        clock = pygame.time.Clock()
        self.start()
        started, steps, fps = time.perf_counter(), 0, 0.0
        step_seconds: list[float] = []
        try:
            while max_steps is None or steps < max_steps:
                user = self.read_input(pygame, inputs)
                if not all(self.apply(command) for command in user.pressed):
                    break
                if user.prompt is not None:
                    self.start(prompt=user.prompt)
                elif not self.paused and self.typing is None:
                    tick = time.perf_counter()
                    action = user.action if user.action is not None else self.keymap.action(user.held, self.step_count)
                    self.step(self.check_action(action))
                    steps += 1
                    took = max(time.perf_counter() - tick, 1e-6)
                    step_seconds.append(took)
                    fps = 0.9 * fps + 0.1 / took if fps else 1 / took
                self.draw(pygame, screen, font, fps)
                pygame.display.flip()
                if self.recording is not None:
                    self.record(pygame, screen, user)
                if self.fps:
                    clock.tick(self.fps)
            seconds = time.perf_counter() - started
            if screenshot is not None:
                screenshot = Path(screenshot)
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                with atomic_write(screenshot, "wb") as f:
                    pygame.image.save(screen, f, "png")
                print(f"wrote {screenshot}")
        finally:
            if self.writer is not None:
                self.toggle_recording()
            pygame.display.quit()
            self.env.close()
            self.real.close()
        timed = step_seconds[1:]
        step_fps = 1 / float(np.median(timed)) if timed else 0.0
        return PlaySummary(steps, seconds, steps / seconds if seconds else 0.0, screenshot, list(self.recordings), step_fps)

    def check_action(self, action: int) -> int:
        n = self.env.action_space.n
        if not 0 <= action < n:
            raise UserError(f"action {action} is outside this world's actions 0..{n - 1}")
        return action
