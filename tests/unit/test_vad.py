from app.engine.vad import SpeechChunk, merge_spans


def test_spans_are_joined_up_to_30_seconds():
    spans = [(0.0, 10.0), (11.0, 20.0), (21.0, 29.0), (31.0, 40.0), (41.0, 45.0)]
    assert merge_spans(spans) == [SpeechChunk(0.0, 29.0), SpeechChunk(31.0, 45.0)]


def test_no_speech_no_chunks():
    assert merge_spans([]) == []


def test_a_single_long_span_stays_whole():
    assert merge_spans([(0.0, 29.9), (30.0, 30.5)]) == [SpeechChunk(0.0, 29.9), SpeechChunk(30.0, 30.5)]
