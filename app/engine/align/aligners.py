"""wav2vec2 forced alignment (WhisperX's, ``forced_alignment``) with aligners cached per language.

Aligners are loaded at startup for the configured languages and on first use for the
others, then kept in a small least-recently-used cache. Loading may download weights: it
runs outside the cache's lock, so requests in other languages never wait on it (requests in
the same language wait for that one load). A language whose aligner cannot be loaded (no
default model, no network, not in the cache) falls back to Whisper's word times with the
reason kept; the load is tried again on a later request after a back-off (1 min, doubling,
at most 1 h), so a network blip does not disable word alignment until restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.transcript import Segment, Word

logger = logging.getLogger(__name__)

_RETRY_FIRST_S = 60.0
_RETRY_MAX_S = 3600.0


@dataclass
class Aligner:
    language: str
    model_name: str
    model: Any
    metadata: dict[str, Any]
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class _Failure:
    reason: str
    attempts: int
    retry_at: float


class AlignerCache:
    def __init__(
        self,
        *,
        device: str,
        overrides: dict[str, str],
        cache_dir: Path,
        capacity: int,
        offline: bool = False,
        load_wait_s: float = 120.0,
    ) -> None:
        self.device = device
        self._overrides = {k.lower(): v for k, v in overrides.items()}
        self._cache_dir = cache_dir
        self._capacity = capacity
        self._offline = offline
        self._load_wait_s = load_wait_s
        self._loaded: OrderedDict[str, Aligner] = OrderedDict()
        self._failures: dict[str, _Failure] = {}
        self._loading: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def get(self, language: str) -> Aligner | None:
        """The aligner for ``language``, loading it on first use; None when there is none (yet)."""
        with self._lock:
            if language in self._loaded:
                self._loaded.move_to_end(language)
                return self._loaded[language]
            failure = self._failures.get(language)
            if failure is not None and time.monotonic() < failure.retry_at:
                return None
            loading = self._loading.get(language)
            owner = loading is None
            if loading is None:
                loading = self._loading[language] = threading.Event()
        if not owner:  # another request is loading this language: wait for it, bounded
            loading.wait(self._load_wait_s)
            with self._lock:
                return self._loaded.get(language)
        try:
            aligner = self._load(language)
        except Exception as exc:  # any loader failure means "no aligner for now", with the reason kept
            self._failed(language, _describe_failure(language, self._overrides.get(language), exc, self._offline))
            return None
        finally:
            with self._lock:
                self._loading.pop(language, None)
            loading.set()
        with self._lock:
            self._failures.pop(language, None)
            self._loaded[language] = aligner
            while len(self._loaded) > self._capacity:
                evicted, _ = self._loaded.popitem(last=False)
                logger.info("Dropped the %r aligner (cache holds %d)", evicted, self._capacity)
        return aligner

    def _failed(self, language: str, reason: str) -> None:
        with self._lock:
            attempts = self._failures[language].attempts + 1 if language in self._failures else 1
            delay = min(_RETRY_FIRST_S * 2 ** (attempts - 1), _RETRY_MAX_S)
            self._failures[language] = _Failure(reason, attempts, time.monotonic() + delay)
        logger.warning(
            "No wav2vec2 aligner for %r: %s (tried %d time(s); next in %.0f s)", language, reason, attempts, delay
        )

    def unavailable_reason(self, language: str) -> str | None:
        failure = self._failures.get(language)
        return failure.reason if failure else None

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "loaded": [{"language": a.language, "model": a.model_name} for a in self._loaded.values()],
                "unavailable": {language: failure.reason for language, failure in self._failures.items()},
            }

    def _load(self, language: str) -> Aligner:
        from app.engine.align.models import load_align_model
        from app.engine.align.sentences import ensure_sentence_splitter

        model_name = self._overrides.get(language)
        model_dir = self._cache_dir / "align"
        if self._offline:
            _require_cached_torchaudio_weights(model_name or _default_model_name(language), model_dir)
        model, metadata = load_align_model(language, self.device, model_name, str(model_dir), self._offline)
        if model is None:  # whisperx prints a hub error and returns None instead of raising
            raise OSError(f"{model_name or _default_model_name(language)} could not be loaded")
        # After the model: NLTK's import is a second of start-up, wasted when the weights are missing.
        ensure_sentence_splitter(language, self._cache_dir / "nltk_data")
        model.eval()
        name = model_name or _default_model_name(language)
        logger.info("Loaded wav2vec2 aligner %s for %r on %s", name, language, self.device)
        return Aligner(language=language, model_name=name, model=model, metadata=metadata)


def _require_cached_torchaudio_weights(model_name: str, model_dir: Path) -> None:
    """torchaudio downloads its bundles with no offline switch: refuse before it tries."""
    import torchaudio

    from app.engine.align.models import is_torchaudio_model

    if not is_torchaudio_model(model_name):
        return  # a hub model: HF_HUB_OFFLINE and local_files_only keep it off the network
    weights = model_dir / Path(getattr(torchaudio.pipelines, model_name)._path).name
    if not weights.is_file():
        raise FileNotFoundError(f"OFFLINE=true and {weights} is not there")


def align(aligner: Aligner, segments: list[Segment], audio: np.ndarray, device: str) -> list[Segment]:
    """Word times for Whisper's segments from the wav2vec2 CTC alignment (WhisperX's, see forced_alignment)."""
    from app.engine.align.forced import align_segments

    transcript = [{"start": s.start, "end": s.end, "text": s.text, "avg_logprob": s.avg_logprob} for s in segments]
    with aligner.lock:
        result = align_segments(transcript, aligner.model, aligner.metadata, audio, device)
    aligned: list[Segment] = []
    for seg in result:
        words = [
            Word(
                word=w["word"],
                start=_float_or_nan(w.get("start")),
                end=_float_or_nan(w.get("end")),
                score=_float_or_none(w.get("score")),
            )
            for w in seg.get("words", [])
        ]
        start, end = float(seg["start"]), float(seg["end"])
        aligned.append(
            Segment(
                start=start,
                end=end,
                text=str(seg["text"]).strip(),
                words=words,
                avg_logprob=_float_or_none(seg.get("avg_logprob")),
                no_speech_prob=(window := _window_of(start, end, segments)).no_speech_prob,
                temperature=window.temperature,
                compression_ratio=window.compression_ratio,
            )
        )
    return aligned


def _window_of(start: float, end: float, windows: list[Segment]) -> Segment:
    """The decoded window a sentence came from (WhisperX splits windows into sentences)."""
    middle = (start + end) / 2
    return min(
        windows, key=lambda w: 0.0 if w.start <= middle <= w.end else min(abs(w.start - middle), abs(w.end - middle))
    )


def _float_or_nan(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _float_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if np.isnan(value) else value


def _default_model_name(language: str) -> str:
    from app.engine.align.models import default_model_name

    return default_model_name(language) or "none"


def _describe_failure(language: str, override: str | None, exc: Exception, offline: bool) -> str:
    if override is None and _default_model_name(language) == "none":
        return f"no wav2vec2 model is known for {language!r}; set ALIGN_MODELS to provide one"
    name = override or _default_model_name(language)
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    where = (
        "OFFLINE=true, so it must already be in MODEL_CACHE_DIR"
        if offline
        else "it is downloaded on first use, so it needs network access once or a copy in MODEL_CACHE_DIR"
    )
    return f"could not load {name} ({type(exc).__name__}: {first_line}); {where}"
