"""Manifests: what a folder's weights must be, so that a damaged model is refused instead of half-loaded.

diffusers fills a tensor that a weight file lacks with random values and only warns, and a
safetensors file has no checksum, so a model folder carries ``manifest.json``, written by
``WorldModel.save_pretrained`` (a VAE codec's ``vae/`` folder carries its own), and loading checks
it before any weight is read. It describes every ``*.safetensors`` file below the folder:

| key | holds |
| --- | --- |
| ``format`` | ``1`` |
| ``files`` | ``{path relative to the folder: {"bytes": int, "sha256": hex, "tensors": {name: "F32 [6, 128]"}}}`` |

Checking reads each file once for its sha256 (a shipped model is 6.7 MB). A folder without a
manifest is refused; for a folder you trust, write one with ``python -m worldsim.model.manifest FOLDER``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from safetensors import SafetensorError, safe_open

from worldsim.atomic import atomic_write
from worldsim.errors import MissingFileError, UserError

if TYPE_CHECKING:
    from diffusers.models import ModelMixin

Model = TypeVar("Model", bound="ModelMixin")

MANIFEST_FILE = "manifest.json"
FORMAT = 1
RESTORE = "restore the folder from where you got it"


def trust_command(folder: Path) -> str:
    return f"if you trust this folder as it is, write its manifest with `python -m worldsim.model.manifest {folder}`"


def weight_files(folder: Path) -> dict[str, Path]:
    """Every safetensors file below ``folder``, by its path relative to ``folder``."""
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*.safetensors"))}


def tensors_of(file: Path) -> dict[str, str]:
    """``{name: "DTYPE [shape]"}`` from a safetensors header; an unreadable file is a UserError."""
    try:
        with safe_open(file, "pt") as f:
            return {name: f"{f.get_slice(name).get_dtype()} {f.get_slice(name).get_shape()}" for name in f.keys()}
    except SafetensorError as error:
        raise UserError(f"{file} is not a readable safetensors file ({error}); {RESTORE}") from error


def sha256_of(file: Path) -> str:
    digest = hashlib.sha256()  # hashlib.file_digest would do, from Python 3.11 (we support 3.10)
    with file.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe(file: Path) -> dict[str, Any]:
    return {"bytes": file.stat().st_size, "sha256": sha256_of(file), "tensors": tensors_of(file)}


def write(folder: str | Path) -> Path:
    """Writes ``folder/manifest.json`` describing the weights below ``folder`` as they are now."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingFileError(f"{folder} is not a folder; pass a model folder (with worldsim.json) or a VAE folder")
    files = weight_files(folder)
    if not files:
        raise UserError(f"{folder} holds no *.safetensors weights; pass a model folder (with worldsim.json) or a VAE folder")
    manifest = {"format": FORMAT, "files": {name: describe(file) for name, file in files.items()}}
    with atomic_write(folder / MANIFEST_FILE, "w") as f:
        json.dump(manifest, f, indent=1)
    return folder / MANIFEST_FILE


def read(folder: Path) -> dict[str, dict[str, Any]]:
    """The ``files`` of ``folder``'s manifest; a missing or unreadable one is a UserError."""
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise MissingFileError(f"{folder} has no {MANIFEST_FILE}, so its weights cannot be checked; {trust_command(folder)}")
    try:
        manifest = json.loads(path.read_text())
        if manifest["format"] != FORMAT or not isinstance(manifest["files"], dict):
            raise ValueError(f"format {manifest['format']!r}, expected {FORMAT}")
        return manifest["files"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise UserError(f"{path} is not a worldsim manifest ({error}); {RESTORE}, or {trust_command(folder)}") from error


def verify(folder: str | Path) -> None:
    """Refuses (UserError naming the file) any weight file or tensor below ``folder`` that is missing,
    extra, reshaped or altered since its manifest was written."""
    folder = Path(folder)
    expected, found = read(folder), weight_files(folder)
    missing, extra = sorted(expected.keys() - found.keys()), sorted(found.keys() - expected.keys())
    if missing:
        raise MissingFileError(f"{folder / missing[0]} is missing (listed in {folder / MANIFEST_FILE}); {RESTORE}")
    if extra:
        raise UserError(f"{folder / extra[0]} is not in {folder / MANIFEST_FILE}; remove it, or {trust_command(folder)}")
    for name, file in found.items():
        check_file(file, expected[name], folder)


def check_file(file: Path, expected: dict[str, Any], folder: Path) -> None:
    tensors, wanted = tensors_of(file), expected["tensors"]
    problems = [f"missing tensor {k}" for k in sorted(wanted.keys() - tensors.keys())]
    problems += [f"unexpected tensor {k}" for k in sorted(tensors.keys() - wanted.keys())]
    changed = sorted(k for k in tensors.keys() & wanted.keys() if tensors[k] != wanted[k])
    problems += [f"tensor {k} is {tensors[k]}, expected {wanted[k]}" for k in changed]
    if not problems and (file.stat().st_size != expected["bytes"] or sha256_of(file) != expected["sha256"]):
        problems = ["its bytes differ from those recorded (sha256)"]
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise UserError(f"{file} does not match {folder / MANIFEST_FILE}: {shown}; {RESTORE}, or {trust_command(folder)}")


def load_exact(cls: type[Model], folder: Path) -> Model:
    """``cls.from_pretrained(folder)`` for a diffusers model class, refusing any weight the file lacks,
    has in excess or has in another shape (diffusers would initialise or drop it with only a warning)."""
    # diffusers annotates from_pretrained as giving the model alone, even with output_loading_info.
    loaded = cls.from_pretrained(folder, use_safetensors=True, low_cpu_mem_usage=False, output_loading_info=True)
    model, info = cast("tuple[Model, dict[str, list[Any]]]", loaded)
    kinds = ("missing_keys", "unexpected_keys", "mismatched_keys")
    problems = [f"{kind.replace('_keys', '')} {[str(k) for k in info[kind]][:5]}" for kind in kinds if info[kind]]
    if problems:
        raise UserError(f"the weights in {folder} do not fit its config.json of {cls.__name__}: {'; '.join(problems)}; {RESTORE}")
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m worldsim.model.manifest",
        description="Writes FOLDER/manifest.json for model folders you trust, so that worldsim loads them.",
    )
    parser.add_argument("folders", nargs="+", type=Path, metavar="FOLDER")
    for folder in parser.parse_args(argv).folders:
        try:
            path = write(folder)
        except UserError as error:
            raise SystemExit(f"error: {error}") from None
        print(f"wrote {path} ({len(read(folder))} weight files)")


if __name__ == "__main__":
    main()
