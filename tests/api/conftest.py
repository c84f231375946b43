"""API tier: the real app, routes and error mapping, with a fake pipeline in place of the models."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.control.cancellation import CancelToken
from app.control.progress import Progress
from app.engine.decoding import Urgency
from app.engine.options import Capabilities, ResolvedOptions, TranscribeOptions, resolve
from app.engine.speakers.known import KnownSpeaker, VoiceModel
from app.engine.vad import SpeechChunk
from app.engine.whisper.batching import BatchScheduler
from app.engine.whisper.stage import DecodedCount
from app.engine.whisper_models import LoadedWhisper, ModelSpec, WhisperModels
from app.main import create_app
from app.runtime.timing import StepTimer
from app.serving.status import ServiceState
from app.transcript import (
    DiarizationReport,
    KnownSpeakerMatch,
    Segment,
    SpeakerTurn,
    TextListener,
    TextPiece,
    TokenLogprob,
    Transcript,
    Word,
)
from tests.support.waiting import wait_for, wait_for_job


class FakePipeline:
    """Answers like the real pipeline, from the options it was given, without any model.

    Options are resolved by the real rules (``app/engine/options.py``) against its capabilities.
    """

    model_name = "fake-whisper"
    aligners = None
    diarizer: object | None = None  # as if none is loaded: speakers only when asked for
    diarizer_unavailable: str | None = None
    known_speaker_threshold: float | None = None
    default_batch_size = 16
    max_batch_size = 64
    # What /health and /metrics read of Whisper: an idle scheduler and no model calls.
    whisper = SimpleNamespace(
        scheduler=BatchScheduler("fake-whisper"),
        model_seconds=StepTimer(),
        decoded=DecodedCount(),
        languages=frozenset({"en", "de"}),
    )

    window_texts = ("Hello there.", "Hi.")  # the text of the transcript below, window by window

    def __init__(self, more_models: tuple[str, ...] = ()) -> None:
        """``more_models``: models besides the default a request may name, each loaded on first use
        (``self.loaded``) by the real ``WhisperModels``."""
        specs = [ModelSpec(name, name, english_only=name.endswith(".en")) for name in (self.model_name, *more_models)]
        self.loaded: list[str] = []
        self.models = WhisperModels(specs, self.model_name, self._load, lambda _: None)
        self.models.start()
        self.calls: list[tuple[np.ndarray, ResolvedOptions]] = []
        self.known: list[list[KnownSpeaker]] = []  # each run's known speakers
        self.urgencies: list[Urgency] = []  # each run's place in Whisper's queue
        self.short_windows: list[bool] = []  # whether each run's windows were the audio alone (partials)
        self.release = threading.Event()
        self.release.set()
        self.started = threading.Event()
        self.fail_with: Exception | None = None

    def _load(self, spec: ModelSpec) -> LoadedWhisper:
        self.loaded.append(spec.id)
        languages = frozenset({"en"}) if spec.english_only else self.whisper.languages
        return LoadedWhisper(SimpleNamespace(**{**vars(self.whisper), "languages": languages}), 1.0, spec.id)  # type: ignore[arg-type]

    def fingerprint(self, model: str | None = None) -> str:
        return f"{model or self.model_name}-weights"

    @property
    def capabilities(self) -> Capabilities:
        return self.capabilities_of(self.model_name)

    def capabilities_of(self, model: str) -> Capabilities:
        english_only = self.models.english_only(model)
        return Capabilities(
            model=model,
            multilingual=not english_only,
            languages=frozenset({"en"}) if english_only else frozenset({"en", "de"}),
            diarizer=self.diarizer is not None,
            diarizer_unavailable=self.diarizer_unavailable,
            default_batch_size=self.default_batch_size,
            max_batch_size=self.max_batch_size,
        )

    def resolve(self, options: TranscribeOptions) -> ResolvedOptions:
        return resolve(options, self.capabilities_of(self.models.id_of(options.model)))

    def voice_model(self) -> VoiceModel | None:
        if self.diarizer is None:
            return None
        return VoiceModel(self.diarizer.embed, self.known_speaker_threshold or self.diarizer.same_voice)  # type: ignore[attr-defined]

    def close(self) -> None:
        pass

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
        self.known.append(known or [])
        self.urgencies.append(urgency)
        self.short_windows.append(options.short_windows)
        with self.models.use(options.model or self.model_name):
            transcript = self._run(audio, options, cancel, progress, listener)
        if known:  # the first known speaker is the first voice, as if its reference matched
            rename = {"SPEAKER_00": known[0].name}
            for segment in transcript.segments:
                segment.speaker = rename.get(segment.speaker or "", segment.speaker)
                for word in segment.words:
                    word.speaker = rename.get(word.speaker or "", word.speaker)
            report = transcript.diarization
            report.turns = [SpeakerTurn(t.start, t.end, rename.get(t.speaker, t.speaker)) for t in report.turns]
            report.known_speakers = [KnownSpeakerMatch(known[0].name, "SPEAKER_00", 0.93)]
        return transcript

    def _run(
        self,
        audio: np.ndarray,
        options: ResolvedOptions,
        cancel: CancelToken | None,
        progress: Progress | None,
        listener: TextListener | None,
    ) -> Transcript:
        self.calls.append((audio, options))
        if progress is not None:
            progress.enter("asr")
        self.started.set()
        deadline = time.monotonic() + 30
        while not self.release.wait(0.05) and time.monotonic() < deadline:
            if cancel is not None:
                cancel.check()  # a stage boundary, as the real pipeline checks
        if listener is not None:  # each window's text, as Whisper hands it on
            for index, text in enumerate(self.window_texts):
                logprobs = [TokenLogprob(text, -0.25, list(text.encode()))] if listener.logprobs else None
                listener(TextPiece(index, float(index), float(index + 1), text, logprobs))
        if self.fail_with is not None:
            raise self.fail_with
        assert isinstance(options, ResolvedOptions), "the route resolves options"
        diarize = options.diarize
        speakers = ("SPEAKER_00", "SPEAKER_01") if diarize else (None, None)
        first, second = speakers
        hello = [Word("Hello", 0.5, 0.9, 0.9, first), Word("there.", 1.0, 1.5, 0.8, first)]
        segments = [
            Segment(0.5, 1.5, "Hello there.", hello, -0.2, first),
            Segment(2.0, 3.0, "Hi.", [Word("Hi.", 2.0, 3.0, 0.95, second)], -0.1, second),
        ]
        turns = [SpeakerTurn(0.4, 1.6, "SPEAKER_00"), SpeakerTurn(1.9, 3.1, "SPEAKER_01")] if diarize else []
        return Transcript(
            duration=audio.shape[0] / 16000,
            language=options.language or "en",
            language_probability=None if options.language else 0.97,
            segments=segments,
            word_time_source="whisper",
            diarization=DiarizationReport(
                requested=diarize, performed=diarize, diarizer="fake" if diarize else None, device="cpu", turns=turns
            ),
            task=options.task,
            model=options.model or self.model_name,
            temperature=options.checks.temperatures[0],
            timings={"asr": 0.01, "total": 0.02},
        )


@pytest.fixture
def fake_pipeline() -> FakePipeline:
    return FakePipeline()


@pytest.fixture
def ready_state(make_settings: Callable[..., Any], fake_pipeline: FakePipeline) -> Callable[..., ServiceState]:
    """A service state as the loader leaves it once ready, serving the fake pipeline."""

    def build(**overrides: Any) -> ServiceState:
        state = ServiceState(make_settings(**overrides))
        state.device = state.diarization_device = "cpu"
        state.compute_type = "int8"
        state.stages["asr"].loaded = True
        state.stages["asr"].model = "fake-whisper"
        state.stages["diarization"].loaded = True
        # The limits the loader gives the real pipeline.
        fake_pipeline.default_batch_size = state.settings.batch_size
        fake_pipeline.max_batch_size = state.settings.max_batch_size
        state.ready(fake_pipeline)  # type: ignore[arg-type]
        return state

    return build


@pytest.fixture
def make_client(ready_state: Callable[..., ServiceState]) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def build(state: ServiceState | None = None, **overrides: Any) -> TestClient:
        state = state or ready_state(**overrides)
        client = TestClient(create_app(state.settings, state=state), raise_server_exceptions=False)
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@pytest.fixture(scope="session")
def call_pcm24(sample_wav) -> bytes:
    """The sample call as OpenAI's realtime audio: 24 kHz mono PCM16."""
    from faster_whisper.audio import decode_audio

    audio = decode_audio(str(sample_wav), sampling_rate=24000)
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


@pytest.fixture(scope="session")
def sample_bytes(sample_wav) -> bytes:
    return sample_wav.read_bytes()


FINISHED = ("succeeded", "failed", "cancelled")


@pytest.fixture
def make_jobs_client(make_client, ready_state) -> Callable[..., TestClient]:
    """A client whose job workers run the fake pipeline."""

    def build(**overrides: Any) -> TestClient:
        overrides.setdefault("job_lease_s", 2.0)
        client = make_client(ready_state(**overrides))
        client.__enter__()  # the lifespan opens the job store and starts the workers
        wait_for(lambda: client.app.state.jobs.service is not None, 20, "the job store open")
        return client

    return build


@pytest.fixture
def jobs_client(make_jobs_client) -> TestClient:
    return make_jobs_client()


def submit(client: TestClient, audio: bytes, headers: dict[str, str] | None = None, **form: str):
    return client.post("/v1/jobs", files={"file": ("call.wav", audio, "audio/wav")}, data=form, headers=headers)


def wait_until(client: TestClient, job_id: str, states: tuple[str, ...] = FINISHED) -> dict[str, Any]:
    return wait_for_job(client, job_id, lambda job: job["state"] in states, timeout_s=20)
