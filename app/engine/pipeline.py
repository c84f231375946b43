"""One request's journey through the stages: VAD → language → Whisper → word times → speakers.

Plain Python, no FastAPI: the router hands a waveform and options in and gets a
``Transcript`` back. Every stage receives the same decoded waveform. Speakers need only the
waveform, so by default they are found on a thread of their own while Whisper works.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field

import numpy as np

from app.control.activity import RequestActivity
from app.control.cancellation import CancelToken
from app.control.progress import Progress
from app.engine.align.aligners import AlignerCache, align
from app.engine.align.tidy import tidy_times
from app.engine.audio import SAMPLE_RATE
from app.engine.decoding import Decoding, Urgency
from app.engine.options import (
    Capabilities,
    ResolvedOptions,
    SpeakerHints,
    TranscribeOptions,
    resolve,
    whisper_languages,
)
from app.engine.speakers.assignment import assign_speakers
from app.engine.speakers.diarization import Diarizer
from app.engine.speakers.known import KnownSpeaker, VoiceModel, name_speakers
from app.engine.vad import SpeechChunk, SpeechDetector
from app.engine.whisper import language
from app.engine.whisper.stage import Whisper
from app.engine.whisper_models import WhisperModels
from app.errors import NotReady, retry_later
from app.runtime.gpu_streams import side_stream
from app.runtime.timing import StepTimer
from app.transcript import (
    DiarizationReport,
    KnownSpeakerMatch,
    Segment,
    SpeakerTurn,
    TextListener,
    Transcript,
    WordTimeSource,
)

logger = logging.getLogger(__name__)

_MIN_AUDIO_SECONDS = 0.1  # shorter clips cannot hold a word; VAD models also reject them


class TranscriptionPipeline:
    def __init__(
        self,
        whisper: Whisper | WhisperModels,
        *,
        vad: SpeechDetector,
        device: str,
        aligners: AlignerCache | None,
        diarizer: Diarizer | None,
        diarizer_unavailable: str | None = None,
        diarizer_loading: bool = False,
        stage_wait_s: float = 120.0,
        default_batch_size: int = 16,
        max_batch_size: int = 64,
        diarize_during_asr: bool = False,
        fingerprint: Callable[[str, str, str | None], str] | None = None,
        known_speaker_threshold: float | None = None,
    ) -> None:
        """``whisper``: the models a request may choose from (WHISPER_MODELS), or just one.

        ``diarizer_loading``: the diarizer comes later (``attach_diarizer``); a request that wants
        speakers meanwhile waits for it, up to ``stage_wait_s``."""
        self.models = whisper if isinstance(whisper, WhisperModels) else WhisperModels.serving(whisper)
        # What a model's weights with these stages produce, as a digest (app/serving/fingerprint.py):
        # the job cache's key; from the model's id, its weights' identity and the diarizer's name.
        self._fingerprint = fingerprint or (lambda model, weights, diarizer: f"{model}:{weights}:{diarizer}")
        self.vad = vad
        self.device = device
        self.aligners = aligners
        self.diarizer: Diarizer | None = None
        self.diarizer_unavailable: str | None = None
        self.stage_wait_s = stage_wait_s
        self.default_batch_size = default_batch_size
        self.max_batch_size = max_batch_size
        # None: the diarizer's own (its embedding model's scale).
        self.known_speaker_threshold = known_speaker_threshold
        self._diarize_during_asr = diarize_during_asr
        self._diarization_thread: ThreadPoolExecutor | None = None
        self._diarizer_settled = threading.Event()  # the diarizer is attached, or known to be unavailable
        self.activity = RequestActivity()  # requests in their stages (not those waiting for the diarizer)
        if not diarizer_loading:
            self.attach_diarizer(diarizer, diarizer_unavailable)

    def attach_diarizer(self, diarizer: Diarizer | None, unavailable: str | None = None) -> None:
        """The diarizer once loaded, or why there is none (start-up loads it after the service is ready)."""
        self.diarizer, self.diarizer_unavailable = diarizer, unavailable
        if self._diarize_during_asr and diarizer is not None and self._diarization_thread is None:
            # Diarization needs only the audio: it starts on this thread once a request's speech
            # is found. One thread: the diarizer runs one request at a time.
            self._diarization_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="diarize")
        self._diarizer_settled.set()

    def voice_model(self) -> VoiceModel | None:
        """What known speakers are matched with (KNOWN_SPEAKER_THRESHOLD, else the diarizer's own
        threshold); None without a diarizer."""
        if self.diarizer is None:
            return None
        return VoiceModel(self.diarizer.embed, self.known_speaker_threshold or self.diarizer.same_voice)

    @property
    def diarizer_loading(self) -> bool:
        return not self._diarizer_settled.is_set()

    def _await_diarizer(self, cancel: CancelToken) -> None:
        """Wait (within ``stage_wait_s``) for a diarizer that is still loading; 503 past that."""
        if self._diarizer_settled.is_set():
            return
        with self.activity.working(-1):  # idle while it waits, so the loading goes on
            settled = cancel.wait(self._diarizer_settled, self.stage_wait_s)
        if not settled:
            raise NotReady(
                f"Speakers were asked for, and the diarizer is still loading after {self.stage_wait_s:g} s "
                "of waiting (start-up). Retry shortly, or send diarize=false for the words alone.",
                headers=retry_later(),
            )

    @property
    def whisper(self) -> Whisper:
        """The default model (loaded at start-up, never unloaded)."""
        return self.models.default_whisper

    @property
    def model_name(self) -> str:
        return self.models.default

    @property
    def capabilities(self) -> Capabilities:
        """What a request's options are resolved against, for the default model (``app/engine/options.py``)."""
        return self.capabilities_of(self.models.default)

    def capabilities_of(self, model: str) -> Capabilities:
        """For ``model``: its languages once it has been loaded; before, what its name says (``*.en``)."""
        english_only = self.models.english_only(model)
        languages = self.models.languages(model) or (frozenset({"en"}) if english_only else whisper_languages())
        return Capabilities(
            model=model,
            multilingual=not english_only,
            languages=languages,
            diarizer=self.diarizer is not None or self.diarizer_loading,
            diarizer_unavailable=self.diarizer_unavailable,
            default_batch_size=self.default_batch_size,
            max_batch_size=self.max_batch_size,
        )

    def resolve(self, options: TranscribeOptions) -> ResolvedOptions:
        """Every default decided, for the model ``options`` name (ModelNotFound, a 404, for another)."""
        return resolve(options, self.capabilities_of(self.models.id_of(options.model)))

    def fingerprint(self, model: str | None = None) -> str:
        """The job cache's digest of what ``model`` (default: the default) produces with these stages."""
        model = model or self.models.default
        # While it loads, which diarizer will serve is not known yet (a pretrained pipeline may
        # fall back to the offline one): such keys never match a later one.
        diarizer = "loading" if self.diarizer_loading else self.diarizer.name if self.diarizer else None
        return self._fingerprint(model, self.models.weights(model), diarizer)

    def close(self) -> None:
        """At shutdown: queued Whisper work fails fast instead of hanging."""
        self.models.close()
        if self._diarization_thread is not None:
            self._diarization_thread.shutdown(wait=False, cancel_futures=True)

    def run(
        self,
        audio: np.ndarray,
        options: ResolvedOptions,
        cancel: CancelToken | None = None,
        progress: Progress | None = None,
        *,
        listener: TextListener | None = None,
        speech: list[SpeechChunk] | None = None,
        known: list[KnownSpeaker] | None = None,
        urgency: Urgency = Urgency.FILE,
    ) -> Transcript:
        """Every stage in turn (diarization beside the words, with ``diarize_during_asr``);
        ``cancel`` stops the work at the next stage or batch boundary.

        ``progress`` hears of every stage entered and every batch of windows sent to Whisper;
        ``listener``, of each window's text as it is decoded. ``speech`` is where the speech
        is when the caller knows already (a live turn its own VAD found): no VAD runs then.
        ``known``: the known speakers' decoded reference clips, to name the diarized speakers by.
        ``urgency``: who waits (a file, a live turn), which orders the work in Whisper's queue.
        """
        model = options.model or self.models.default
        # On a side stream: not queued behind Whisper's decoding of other requests.
        with self.activity.working(), self.models.use(model) as whisper, side_stream(self.device):
            return self._run(whisper, audio, options, cancel, progress, listener, speech, known or [], urgency)

    def _run(
        self,
        whisper: Whisper,
        audio: np.ndarray,
        options: ResolvedOptions,
        cancel: CancelToken | None,
        progress: Progress | None,
        listener: TextListener | None,
        speech: list[SpeechChunk] | None,
        known: list[KnownSpeaker],
        urgency: Urgency,
    ) -> Transcript:
        cancel = cancel or CancelToken()
        progress = progress or Progress(options.stages)
        duration = audio.shape[0] / SAMPLE_RATE
        loaded = self.diarizer.device if self.diarizer is not None else None
        report = DiarizationReport(requested=bool(options.diarize), device=loaded)
        result = Transcript(
            duration,
            options.language,
            None,
            [],
            None,
            report,
            task=options.task,
            model=whisper.source.display_name if options.model is None else options.model,
            temperature=options.checks.temperatures[0],
        )
        timer = StepTimer(result.timings)
        progress.audio(duration)

        @contextmanager
        def stage(name: str) -> Iterator[None]:
            progress.enter(name)
            with timer(name):
                yield

        with timer("total"):
            if duration < _MIN_AUDIO_SECONDS:
                return result
            cancel.check()
            with stage("vad"):
                # Where the caller knows the speech (a live turn), it is used as it is, unless a
                # span is longer than a window: then the VAD cuts it, at its pauses where it can.
                if speech is None or any(c.end - c.start > options.speech.chunk_size for c in speech):
                    chunks = self.vad(audio, options.speech)
                else:
                    chunks = speech
            if not chunks:
                return result
            early = self._start_diarization(audio, options, cancel)
            try:
                self._words(whisper, audio, chunks, options, urgency, result, timer, stage, cancel, progress, listener)
            except BaseException:
                if early is not None:
                    early.cancel.cancel("the transcription stopped before its speakers were found")
                raise
            if options.diarize:
                cancel.check()
                with stage("diarization"):
                    self._diarize(audio, options.hints, result, cancel, early, known)
        progress.finish()
        return result

    def _words(
        self,
        whisper: Whisper,
        audio: np.ndarray,
        chunks: list[SpeechChunk],
        options: ResolvedOptions,
        urgency: Urgency,
        result: Transcript,
        timer: StepTimer,
        stage: Callable[[str], AbstractContextManager[None]],
        cancel: CancelToken,
        progress: Progress,
        listener: TextListener | None,
    ) -> None:
        """Language, text and word times into ``result``."""
        if options.language is None:
            with stage("language_detection"):
                result.language, result.language_probability = whisper.detect_language(audio, chunks, cancel, urgency)
            if result.language_probability is None:  # an English-only model: nothing was identified
                result.warnings.append(language.english_only(result.model))
            elif unsure := language.unsure(result.language, result.language_probability, result.model):
                result.warnings.append(unsure)
        decoding = options.decoding(result.language or "en", urgency)
        with stage("asr"):
            segments = whisper.transcribe(
                audio,
                chunks,
                decoding,
                timer=timer,
                cancel=cancel,
                progress=progress,
                listener=listener,
                warnings=result.warnings,
            )
        if options.word_timestamps:
            cancel.check()
            with stage("alignment"):
                segments, result.word_time_source = self._time_words(
                    whisper, audio, segments, decoding, result, timer, cancel, progress
                )
        result.segments = tidy_times(segments, result.duration)
        texts = [segment.text for segment in result.segments]
        tokens = whisper.text_tokens(texts, decoding)
        for segment, segment_tokens in zip(result.segments, tokens, strict=True):
            segment.tokens = segment_tokens

    def _time_words(
        self,
        whisper: Whisper,
        audio: np.ndarray,
        segments: list[Segment],
        decoding: Decoding,
        result: Transcript,
        timer: StepTimer,
        cancel: CancelToken,
        progress: Progress,
    ) -> tuple[list[Segment], WordTimeSource | None]:
        if not segments:
            return segments, None
        # Translations are English text, so they are aligned with the English aligner.
        text_language = "en" if decoding.task == "translate" else decoding.language
        aligner = self.aligners.get(text_language) if self.aligners is not None else None
        if aligner is not None:
            try:
                return align(aligner, segments, audio, self.aligners.device), "wav2vec2"  # type: ignore[union-attr]
            except Exception:
                logger.exception("wav2vec2 alignment failed; falling back to Whisper word times")
                result.warnings.append("wav2vec2 alignment failed on this audio; word times come from Whisper.")
        timed = whisper.time_words(audio, segments, decoding, timer=timer, cancel=cancel, progress=progress)
        return timed, "whisper"

    def _start_diarization(
        self, audio: np.ndarray, options: ResolvedOptions, cancel: CancelToken
    ) -> _EarlyDiarization | None:
        if self._diarization_thread is None or not options.diarize:
            return None
        early = _EarlyDiarization(cancel.child())  # also stopped when the words fail, not only on cancel
        early.future = self._diarization_thread.submit(self._timed_turns, audio, options.hints, early)
        early.future.add_done_callback(lambda _: early.done.set())
        return early

    def _timed_turns(self, audio: np.ndarray, hints: SpeakerHints, early: _EarlyDiarization) -> list[SpeakerTurn]:
        assert self.diarizer is not None
        started = time.perf_counter()
        try:
            with side_stream(self.diarizer.device, "diarization"):
                return self.diarizer(audio, hints, early.cancel, early.steps)
        finally:
            early.ran_s = time.perf_counter() - started

    def _diarize(
        self,
        audio: np.ndarray,
        hints: SpeakerHints,
        result: Transcript,
        cancel: CancelToken,
        early: _EarlyDiarization | None,
        known: list[KnownSpeaker],
    ) -> None:
        report = result.diarization
        self._await_diarizer(cancel)
        if self.diarizer is None:
            report.detail = self.diarizer_unavailable or "diarization is disabled (ENABLE_DIARIZATION=false)"
            result.warnings.append(f"Diarization was requested but is unavailable: {report.detail}")
            return
        report.diarizer, report.device = self.diarizer.name, self.diarizer.device
        if early is None:
            steps: dict[str, float] = {}
            turns = self.diarizer(audio, hints, cancel, steps)
        else:
            cancel.wait(early.done)  # the request may be cancelled while it waits
            turns, steps = early.future.result(), early.steps  # type: ignore[union-attr]
            # The stage's timer has what the request waited for after its words; this, what it ran.
            result.timings["diarization_beside_words"] = round(early.ran_s, 4)
        for step, seconds in steps.items():  # pyannote's steps, for the timings a response shows
            result.timings[f"diarization_{step}"] = seconds
        report.turns = [SpeakerTurn(round(t.start, 3), round(t.end, 3), t.speaker) for t in turns]
        if known:
            cancel.check()
            with StepTimer(result.timings)("diarization_known_speakers"):
                voices = self.voice_model()
                assert voices is not None
                report.turns, matches = name_speakers(audio, report.turns, known, voices.embed, voices.same_voice)
            report.known_speakers = [KnownSpeakerMatch(m.name, m.speaker, m.similarity) for m in matches]
        report.performed = True
        assign_speakers(result.segments, report.turns)


@dataclass
class _EarlyDiarization:
    """A request's diarization, started on the pipeline's diarization thread beside its words."""

    cancel: CancelToken
    future: Future[list[SpeakerTurn]] | None = None
    done: threading.Event = field(default_factory=threading.Event)
    steps: dict[str, float] = field(default_factory=dict)  # pyannote's steps, as the diarizer reports them
    ran_s: float = 0.0
