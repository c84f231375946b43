"""What a queued job stores of its request: the transcription options, with a schema version.

Not the HTTP form: a deploy that changes the form (a renamed field, a new route) must not
strand the rows the previous release queued. Each version has its reader here, kept for as
long as rows of it can still exist (the retention period after the release that replaced it):

- version 1, the first release: the form fields of ``/transcribe`` as it validated them
  (``language``, ``task``, ``diarize``, the speaker hints, ``initial_prompt``, ``batch_size``,
  ``word_timestamps``), with no version key;
- version 2: ``{"version": 2, "options": <TranscribeOptions>}`` with the speaker hints nested
  under ``hints``;
- version 3: ``{"version": 3, "options": <TranscribeOptions>}``, the hints as the form has them
  (``num_speakers``, ``min_speakers``, ``max_speakers``).

The options are the request's, not yet resolved: a front end (``ROLE=api``) has no models to
resolve them against, so the worker that runs the job resolves them against its own.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from app.engine.options import TranscribeOptions

OPTIONS_VERSION = 3


class StoredOptionsUnreadable(ValueError):
    """The row's options are corrupt, or of a version this release cannot read."""

    def __init__(self, message: str, *, newer: bool = False) -> None:
        super().__init__(message)
        self.newer = newer  # written by a newer release: a worker of that release can run it


def dump_options(options: TranscribeOptions) -> dict[str, Any]:
    return {"version": OPTIONS_VERSION, "options": options.model_dump()}


def load_options(stored: dict[str, Any]) -> TranscribeOptions:
    version = stored.get("version", 1)
    try:
        if version == 1:
            return _from_version_1(stored)
        if version == 2:
            flat = dict(stored["options"])
            hints = flat.pop("hints", None) or {}
            return TranscribeOptions.model_validate({**flat, **hints})
        if version == OPTIONS_VERSION:
            return TranscribeOptions.model_validate(stored["options"])
    except (KeyError, TypeError, ValueError, ValidationError) as exc:
        raise StoredOptionsUnreadable(f"The job's stored options (version {version}) do not parse: {exc}") from None
    if isinstance(version, int) and version > OPTIONS_VERSION:
        raise StoredOptionsUnreadable(
            f"The job was stored by a newer release (options version {version}; this worker reads up to "
            f"{OPTIONS_VERSION}).",
            newer=True,
        )
    raise StoredOptionsUnreadable(f"The job's stored options have an unknown version {version!r}.")


def _from_version_1(form: dict[str, Any]) -> TranscribeOptions:
    """The first release's rows: /transcribe's validated form fields (``output`` left out)."""
    language = form.get("language")
    hints = {name: form.get(name) for name in ("num_speakers", "min_speakers", "max_speakers")}
    return TranscribeOptions.model_validate(
        {
            "language": None if language in (None, "", "auto") else language,
            "task": form.get("task") or "transcribe",
            "diarize": form.get("diarize"),
            **hints,
            "initial_prompt": form.get("initial_prompt"),
            "batch_size": form.get("batch_size"),
            "word_timestamps": form.get("word_timestamps", True),
        }
    )
