"""Warmup on the real stages: every stage once, then (on GPUs) one full batch of windows."""

from app.services.pipeline import TranscribeOptions, TranscriptionPipeline
from app.services.vad import load_speech_detector
from app.services.warmup import _warm_full_batch, sample_speech, warm_up


def test_warmup_reports_each_stage(whisper):
    pipeline = TranscriptionPipeline(
        whisper, vad=load_speech_detector("silero", "cpu"), device="cpu", aligners=None, diarizer=None
    )
    report = warm_up(pipeline, "cpu", batch_size=4)
    assert report.asr_s > 0 and report.alignment_s > 0 and report.diarization_s == 0.0
    assert report.total_s >= report.asr_s + report.alignment_s - 0.002  # each rounded to the millisecond
    assert report.audio_s == 30.0


def test_the_full_batch_is_built_from_repeated_speech_windows(whisper):
    calls = []

    class RecordingWhisper:
        def transcribe(self, audio, chunks, **kwargs):
            calls.append(("transcribe", audio.shape[0], chunks, kwargs["batch_size"]))
            return whisper.transcribe(audio, chunks, **kwargs)

        def time_words(self, audio, segments, **kwargs):
            calls.append(("time_words", len(segments), kwargs["batch_size"]))
            return []

    vad = load_speech_detector("silero", "cpu")
    pipeline = TranscriptionPipeline(whisper, vad=vad, device="cpu", aligners=None, diarizer=None)
    clip = sample_speech()
    first = pipeline.run(clip, TranscribeOptions(language="en", batch_size=3))
    pipeline.whisper = RecordingWhisper()  # type: ignore[assignment]
    asr_s, alignment_s = _warm_full_batch(pipeline, clip, 3, first)

    (_, samples, windows, batch), (name, segments, words_batch) = calls
    assert batch == 3 and len(windows) == 3
    assert [round(w.start - windows[0].start, 3) for w in windows] == [0.0, 30.0, 60.0]
    assert samples == 3 * clip.shape[0]
    assert name == "time_words" and segments == 3 and words_batch == 3
    assert asr_s > 0 and alignment_s >= 0
