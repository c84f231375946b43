"""Warmup on the real stages: every stage once, and Whisper on a full batch per replica."""

import threading

from app.engine.pipeline import TranscriptionPipeline
from app.engine.vad import load_speech_detector
from app.serving.warmup import sample_speech, warm_up, warm_whisper_batches


def test_warmup_reports_each_stage(whisper):
    pipeline = TranscriptionPipeline(
        whisper, vad=load_speech_detector("silero", "cpu"), device="cpu", aligners=None, diarizer=None
    )
    report = warm_up(pipeline, batch_size=4)
    assert report.asr_s > 0 and report.alignment_s > 0 and report.diarization_s == 0.0
    assert report.total_s >= report.asr_s + report.alignment_s - 0.002  # each rounded to the millisecond
    assert report.audio_s == 4.0  # on the CPU: a few seconds of the sample with speech in them


def test_every_replica_gets_a_full_batch_of_windows_and_their_word_times(whisper):
    calls, threads = [], set()

    class RecordingWhisper:
        feature_device = whisper.feature_device

        def prepare(self, batch_size, decoding):
            calls.append(("prepare", batch_size))
            whisper.prepare(batch_size, decoding)

        def transcribe(self, audio, chunks, decoding, **kwargs):
            threads.add(threading.get_ident())
            calls.append(("transcribe", len(chunks), decoding.batch_size, audio.shape[0]))
            return whisper.transcribe(audio, chunks, decoding, **kwargs)

        def time_words(self, audio, segments, decoding, **kwargs):
            calls.append(("time_words", len(segments), decoding.batch_size))
            return whisper.time_words(audio, segments, decoding, **kwargs)

    warm_whisper_batches(RecordingWhisper(), batch_size=3, replicas=2, word_times=True)  # type: ignore[arg-type]

    clip = sample_speech()
    assert sorted(calls) == [
        ("prepare", 3),  # once, before the replicas' batches (the torch engine captures its graphs)
        ("time_words", 3, 3),
        ("time_words", 3, 3),
        ("transcribe", 3, 3, clip.shape[0]),
        ("transcribe", 3, 3, clip.shape[0]),
    ]
    assert len(threads) == 2  # both batches are handed over at once, one per replica

    calls.clear()
    warm_whisper_batches(RecordingWhisper(), batch_size=3, replicas=1, word_times=False)  # type: ignore[arg-type]
    assert calls == [("prepare", 3), ("transcribe", 3, 3, clip.shape[0])]
