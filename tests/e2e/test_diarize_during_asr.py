"""Diarization started beside the words (DIARIZE_DURING_ASR): same speakers, and it stops with its
request; a diarizer attached after ready (start-up loads it last) serves the requests that waited."""

from __future__ import annotations

import threading
import time

import pytest

from app.control.cancellation import CancelToken
from app.engine.options import ResolvedOptions, SpeakerHints, TranscribeOptions
from app.engine.pipeline import TranscriptionPipeline
from app.engine.speakers.diarization import PyannoteDiarizer
from app.engine.vad import load_speech_detector
from app.engine.whisper import fallback
from app.errors import Cancelled, NotReady
from app.serving.warmup import sample_speech
from app.transcript import SpeakerTurn

OPTIONS = ResolvedOptions("en", "transcribe", True, SpeakerHints(), None, 4, True, fallback.ONCE)


def pipeline(whisper, diarizer, during_asr: bool) -> TranscriptionPipeline:
    vad = load_speech_detector("silero", "cpu")
    return TranscriptionPipeline(
        whisper, vad=vad, device="cpu", aligners=None, diarizer=diarizer, diarize_during_asr=during_asr
    )


def late_pipeline(whisper, **options) -> TranscriptionPipeline:
    """A pipeline whose diarizer is still loading (start-up attaches it after ready)."""
    vad = load_speech_detector("silero", "cpu")
    return TranscriptionPipeline(
        whisper, vad=vad, device="cpu", aligners=None, diarizer=None, diarizer_loading=True, **options
    )


def test_the_call_gets_the_same_speakers_either_way(whisper):
    diarizer = PyannoteDiarizer.offline("cpu")
    audio = sample_speech()
    after = pipeline(whisper, diarizer, during_asr=False).run(audio, OPTIONS)
    beside = pipeline(whisper, diarizer, during_asr=True).run(audio, OPTIONS)

    assert beside.diarization.performed and beside.diarization.turns == after.diarization.turns
    assert [w.speaker for s in beside.segments for w in s.words] == [w.speaker for s in after.segments for w in s.words]
    assert len({t.speaker for t in beside.diarization.turns}) == 2
    assert beside.timings["diarization_beside_words"] > 0 and "diarization_beside_words" not in after.timings
    # It ran while Whisper did: the request waited less than the diarizer ran.
    assert beside.timings["diarization"] < beside.timings["diarization_beside_words"]


class SlowDiarizer:
    """Checks its cancel token every 10 ms for up to 10 s, like pyannote's hook at each batch."""

    name, device = "slow", "cpu"

    def __init__(self) -> None:
        self.started = threading.Event()
        self.stopped_by: BaseException | None = None

    def __call__(self, audio, hints, cancel, steps) -> list[SpeakerTurn]:
        self.started.set()
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                cancel.check()
                time.sleep(0.01)
        except Cancelled as exc:
            self.stopped_by = exc
            raise
        return [SpeakerTurn(0.0, 1.0, "SPEAKER_00")]


def test_failing_words_stop_the_diarization_started_beside_them(whisper, monkeypatch):
    diarizer = SlowDiarizer()
    run = pipeline(whisper, diarizer, during_asr=True)

    def broken(*args, **kwargs):
        assert diarizer.started.wait(5)
        raise RuntimeError("the GPU fell off the bus")

    monkeypatch.setattr(whisper, "transcribe", broken)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="fell off"):
        run.run(sample_speech(), OPTIONS)
    deadline = time.monotonic() + 5
    while diarizer.stopped_by is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert isinstance(diarizer.stopped_by, Cancelled)
    assert time.monotonic() - started < 5


def test_a_request_cancelled_while_waiting_for_its_speakers_stops_at_once(whisper, monkeypatch):
    diarizer = SlowDiarizer()
    run = pipeline(whisper, diarizer, during_asr=True)
    monkeypatch.setattr(whisper, "transcribe", lambda *args, **kwargs: [])  # words done at once: it waits
    cancel = CancelToken()
    threading.Timer(0.5, cancel.cancel, args=("the client went away",)).start()
    started = time.monotonic()
    with pytest.raises(Cancelled, match="client went away"):
        run.run(sample_speech(), OPTIONS, cancel=cancel)
    assert time.monotonic() - started < 3  # not the diarizer's 10 s
    deadline = time.monotonic() + 2
    while diarizer.stopped_by is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert isinstance(diarizer.stopped_by, Cancelled)  # the child token saw its parent cancelled


@pytest.mark.parametrize("during_asr", [False, True])
def test_a_diarizer_attached_after_ready_serves_the_requests_that_waited_for_it(whisper, during_asr):
    diarizer = PyannoteDiarizer.offline("cpu")
    audio = sample_speech()
    late = late_pipeline(whisper, diarize_during_asr=during_asr)
    assert late.diarizer_loading and late.capabilities.diarizer, "requests resolve as if it were there"
    assert late.resolve(TranscribeOptions()).diarize, "by default they want speakers, so they wait"
    loading_key = late.fingerprint()
    answers: list = []
    waiting = threading.Thread(target=lambda: answers.append(late.run(audio, late.resolve(TranscribeOptions()))))
    waiting.start()
    assert not late.activity.wait_until_idle(0.2), "a request in its stages keeps the diarizer's loading waiting"
    assert late.activity.wait_until_idle(120), "one that waits for the diarizer does not"
    assert not answers, "a request that wants speakers waits for the diarizer"
    late.attach_diarizer(diarizer)
    waiting.join(timeout=300)
    expected = pipeline(whisper, diarizer, during_asr=False).run(audio, OPTIONS)
    assert answers[0].diarization.performed and answers[0].diarization.turns == expected.diarization.turns
    assert late.fingerprint() != loading_key, "no job cached while it loaded matches one after"


def test_a_diarizer_that_never_comes_is_a_503_then_unavailable(whisper):
    late = late_pipeline(whisper, stage_wait_s=0.5)
    audio = sample_speech()
    with pytest.raises(NotReady) as refused:
        late.run(audio, late.resolve(TranscribeOptions(diarize=True)))
    assert refused.value.headers and refused.value.headers["Retry-After"]
    assert "diarize=false" in refused.value.message
    words = late.run(audio, late.resolve(TranscribeOptions(diarize=False)))
    assert words.segments and not words.diarization.requested, "words alone never wait"

    late.attach_diarizer(None, "the diarizer failed to load: OSError: gone")
    assert not late.capabilities.diarizer and not late.resolve(TranscribeOptions()).diarize
    asked = late.run(audio, late.resolve(TranscribeOptions(diarize=True)))
    assert not asked.diarization.performed and "OSError: gone" in asked.warnings[0]
