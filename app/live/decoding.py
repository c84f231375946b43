"""How a live turn is decoded: the options of a partial and of a committed turn's final decode
(and the model a partial uses), and the listener that collects a final decode's token
log-probabilities."""

from __future__ import annotations

from dataclasses import replace

from app.engine.options import ResolvedOptions, TranscribeOptions
from app.live.protocol import LiveConfig
from app.serving.transcriber import Transcriber
from app.transcript import TextPiece, TokenLogprob

_FINAL_BATCH = 4  # the most windows a committed turn's batch holds


def turn_options(
    transcriber: Transcriber, config: LiveConfig, *, partial: bool, language: str | None = None
) -> ResolvedOptions:
    """A partial decode is text only; a committed turn's has words, and speakers when asked
    (named by the session's voices afterwards, not by the pipeline: see speakers.py)."""
    options = TranscribeOptions(
        model=partial_model(transcriber, config, language) if partial else config.model,
        language=config.language or language,
        initial_prompt=config.prompt,
        hotwords=", ".join(config.keywords) or None,
        word_timestamps=not partial,
        # A partial is provisional: one pass. The committed turn's windows are checked and
        # decoded again when they fail (fallback.py), as a file's are, unless the session set
        # another schedule (ours: `temperature`, as on /transcribe).
        temperature=[0.0] if partial else config.temperature_schedule,
        diarize=config.speakers and not partial,
        known_speaker_names=[] if partial else list(config.known_speaker_names),
        known_speaker_references=[] if partial else list(config.known_speaker_references),
        # A committed turn leads a small batch of its own (it goes first and is topped up
        # with at most a few other windows), so it is not held up by a large batch of
        # partials; partials share the service's batches (with file windows too on CTranslate2;
        # on the torch engine with other windows of their length).
        batch_size=None if partial else min(_FINAL_BATCH, transcriber.capabilities().max_batch_size),
    )
    # A partial's window is the turn so far, rounded up to 10 s, where the engine can (the
    # torch engine): it costs what the turn costs. The final decode reads full windows.
    return replace(transcriber.resolve(options), short_windows=partial)


def partial_model(transcriber: Transcriber, config: LiveConfig, language: str | None) -> str | None:
    """The model a partial decodes with: REALTIME_PARTIAL_MODEL (a cheaper one) once it is loaded,
    for a session on the default model, where it can do the language; else the session's own. A
    partial is provisional (the committed turn is decoded again by the session's model), so what
    counts is that it comes early."""
    cheaper = transcriber.partial_model()
    if cheaper is None or transcriber.model_id(config.model) != transcriber.model_id(None):
        return config.model
    if transcriber.english_only(cheaper) and (config.language or language) != "en":
        return config.model  # no English yet: an English-only model would translate or invent
    return cheaper


class CollectedLogprobs:
    """The pipeline's text listener for a final decode: collects its token log-probabilities."""

    def __init__(self, logprobs: bool) -> None:
        self.logprobs = logprobs
        self.entries: list[TokenLogprob] | None = [] if logprobs else None

    def __call__(self, piece: TextPiece) -> None:
        if self.entries is not None and piece.logprobs:
            self.entries.extend(piece.logprobs)
