"""What produces a transcript, as one digest: the job cache reuses a result only under the same one.

Named settings are not enough: ``WHISPER_MODEL=auto`` is large-v3 on a GPU worker and the
bundled base on a CPU one, and a hub name is a different model after its repository moves.
So the digest covers what actually runs — the Whisper weights' files, the engine and its
compute type and device, the libraries whose versions change text, and the settings that
change what the stages produce — and two workers share cache entries only when all agree.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

# The packages whose versions change a transcript's words, times or speakers.
TEXT_LIBRARIES = ("ctranslate2", "faster-whisper", "whisperx", "torch", "torchaudio", "pyannote.audio")

_SAMPLE = 1 << 20  # a large file is identified by its size, its first and its last MiB
_WHOLE_FILE_LIMIT = 16 << 20
_CONTENT_ADDRESSED = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # a Hugging Face cache blob's own name


@dataclass(frozen=True)
class ModelsFingerprint:
    whisper: str  # the model's name as users see it
    weights: str  # weights_digest of its files
    engine: str
    compute_type: str
    device: str
    max_new_tokens: int | None
    vad: str
    alignment: dict[str, str] | None  # None: Whisper's own word times; else the overrides of the defaults
    diarizer: str | None
    libraries: dict[str, str] = field(default_factory=lambda: library_versions(TEXT_LIBRARIES))

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


def library_versions(names: tuple[str, ...]) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def weights_digest(location: Path) -> str:
    """A digest of a model folder's files: names, sizes and contents, read cheaply.

    A file of the Hugging Face cache links to a blob named by its content hash, which is used
    as is; other files are hashed whole when small, by their size and first and last MiB when
    large (a 3 GB model.bin is identified in milliseconds, not the seconds of reading it).
    """
    digest = hashlib.sha256()
    files = sorted(p for p in location.rglob("*") if p.is_file() and not p.name.startswith("."))
    for path in files:
        real = path.resolve()
        size = real.stat().st_size
        digest.update(f"{path.relative_to(location).as_posix()}\0{size}\0".encode())
        if _CONTENT_ADDRESSED.fullmatch(real.name):
            digest.update(real.name.encode())
            continue
        with real.open("rb") as data:
            if size <= _WHOLE_FILE_LIMIT:
                digest.update(data.read())
            else:
                digest.update(data.read(_SAMPLE))
                data.seek(size - _SAMPLE)
                digest.update(data.read(_SAMPLE))
    return digest.hexdigest()
