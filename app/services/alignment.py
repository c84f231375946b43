"""wav2vec2 forced alignment (``whisperx.align``) with aligners cached per language.

Aligners are loaded at startup for the configured languages and on first use for the
others, then kept in a small least-recently-used cache. A language whose aligner cannot be
loaded (no default model, no network, not in the cache) is remembered with the reason, so
requests in that language fall back to Whisper's word times immediately instead of
retrying the hub every time.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.services.asr import Segment, Word

logger = logging.getLogger(__name__)


@dataclass
class Aligner:
    language: str
    model_name: str
    model: Any
    metadata: dict[str, Any]
    lock: threading.Lock = field(default_factory=threading.Lock)


class AlignerCache:
    def __init__(
        self,
        *,
        device: str,
        overrides: dict[str, str],
        cache_dir: Path,
        capacity: int,
    ) -> None:
        self.device = device
        self._overrides = {k.lower(): v for k, v in overrides.items()}
        self._cache_dir = cache_dir
        self._capacity = capacity
        self._loaded: OrderedDict[str, Aligner] = OrderedDict()
        self._failures: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, language: str) -> Aligner | None:
        """The aligner for ``language``, loading it on first use; None when there is none."""
        with self._lock:
            if language in self._loaded:
                self._loaded.move_to_end(language)
                return self._loaded[language]
            if language in self._failures:
                return None
            try:
                aligner = self._load(language)
            except Exception as exc:  # any loader failure means "no aligner", with the reason kept
                reason = _describe_failure(language, self._overrides.get(language), exc)
                logger.warning("No wav2vec2 aligner for %r: %s", language, reason)
                self._failures[language] = reason
                return None
            self._loaded[language] = aligner
            while len(self._loaded) > self._capacity:
                evicted, _ = self._loaded.popitem(last=False)
                logger.info("Dropped the %r aligner (cache holds %d)", evicted, self._capacity)
            return aligner

    def unavailable_reason(self, language: str) -> str | None:
        return self._failures.get(language)

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "loaded": [{"language": a.language, "model": a.model_name} for a in self._loaded.values()],
                "unavailable": dict(self._failures),
            }

    def _load(self, language: str) -> Aligner:
        import whisperx

        from app.services.sentence_splitter import ensure_sentence_splitter

        ensure_sentence_splitter(language, self._cache_dir / "nltk_data")
        model_name = self._overrides.get(language)
        model, metadata = whisperx.load_align_model(
            language,
            self.device,
            model_name=model_name,
            model_dir=str(self._cache_dir / "align"),
        )
        model.eval()
        name = model_name or _default_model_name(language)
        logger.info("Loaded wav2vec2 aligner %s for %r on %s", name, language, self.device)
        return Aligner(language=language, model_name=name, model=model, metadata=metadata)


def align(aligner: Aligner, segments: list[Segment], audio: np.ndarray, device: str) -> list[Segment]:
    """Word times for Whisper's segments from the wav2vec2 CTC alignment."""
    import whisperx

    transcript = [{"start": s.start, "end": s.end, "text": s.text, "avg_logprob": s.avg_logprob} for s in segments]
    with aligner.lock:
        result = whisperx.align(transcript, aligner.model, aligner.metadata, audio, device)
    aligned: list[Segment] = []
    for seg in result["segments"]:
        words = [
            Word(
                word=w["word"],
                start=_float_or_nan(w.get("start")),
                end=_float_or_nan(w.get("end")),
                score=_float_or_none(w.get("score")),
            )
            for w in seg.get("words", [])
        ]
        aligned.append(
            Segment(
                start=float(seg["start"]),
                end=float(seg["end"]),
                text=str(seg["text"]).strip(),
                words=words,
                avg_logprob=_float_or_none(seg.get("avg_logprob")),
            )
        )
    return aligned


def _float_or_nan(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _float_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if np.isnan(value) else value


def _default_model_name(language: str) -> str:
    from whisperx.alignment import DEFAULT_ALIGN_MODELS_HF, DEFAULT_ALIGN_MODELS_TORCH

    return DEFAULT_ALIGN_MODELS_TORCH.get(language) or DEFAULT_ALIGN_MODELS_HF.get(language) or "none"


def _describe_failure(language: str, override: str | None, exc: Exception) -> str:
    if override is None and _default_model_name(language) == "none":
        return f"no wav2vec2 model is known for {language!r}; set ALIGN_MODELS to provide one"
    name = override or _default_model_name(language)
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return (
        f"could not load {name} ({type(exc).__name__}: {first_line}); it is downloaded on first use, "
        f"so it needs network access once or a copy in MODEL_CACHE_DIR"
    )
