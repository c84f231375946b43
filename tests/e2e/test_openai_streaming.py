"""stream=true as the ``openai`` SDK's users get it: the real server, the bundled model, real speech.

The streamed text must be the text the same request gets without streaming, delta by delta
in audio order; logprobs must be the decoder's; a client that leaves must free its slot.
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.waiting import wait_for


@pytest.fixture(scope="module")
def long_call(media_dir: Path, sample_wav: Path) -> Path:
    """Three minutes: the sample call six times over, so several Whisper windows."""
    path = media_dir / "call-3min.wav"
    if not path.exists():
        subprocess.run(
            [
                "ffmpeg",
                "-nostdin",
                "-y",
                "-loglevel",
                "error",
                "-stream_loop",
                "5",
                "-i",
                str(sample_wav),
                "-c",
                "copy",
                str(path),
            ],
            check=True,
        )
    return path


def _events(sdk: openai.OpenAI, path: Path, **fields) -> list:
    with path.open("rb") as audio:
        stream = sdk.audio.transcriptions.create(model="whisper-1", file=audio, stream=True, **fields)
        return list(stream)


def _plain(sdk: openai.OpenAI, path: Path, **fields):
    with path.open("rb") as audio:
        return sdk.audio.transcriptions.create(model="whisper-1", file=audio, **fields)


def test_streamed_deltas_join_to_the_text_without_streaming(sdk, long_call):
    events = _events(sdk, long_call)
    deltas = [e for e in events if e.type == "transcript.text.delta"]
    assert [e.type for e in events] == ["transcript.text.delta"] * len(deltas) + ["transcript.text.done"]
    assert len(deltas) >= 6, "one delta per Whisper window"
    done = events[-1]
    assert "".join(d.delta for d in deltas) == done.text
    assert done.text == _plain(sdk, long_call).text
    assert done.usage.seconds == pytest.approx(180.0, abs=0.05)


def test_diarized_stream_ends_with_the_speaker_segments_of_the_plain_answer(sdk, sample_wav):
    events = _events(sdk, sample_wav, response_format="diarized_json")
    kinds = [e.type for e in events]
    first_segment = kinds.index("transcript.text.segment")
    assert set(kinds[:first_segment]) == {"transcript.text.delta"} and kinds[-1] == "transcript.text.done"
    streamed = [(s.id, s.speaker, s.start, s.end, s.text) for s in events[first_segment:-1]]
    plain = _plain(sdk, sample_wav, response_format="diarized_json")
    assert streamed == [(s.id, s.speaker, s.start, s.end, s.text) for s in plain.segments]
    assert len({speaker for _, speaker, *_ in streamed}) == 2
    assert events[-1].text == plain.text


def test_logprobs_are_the_decoders_per_token(sdk, sample_wav):
    events = _events(sdk, sample_wav, include=["logprobs"])
    deltas, done = events[:-1], events[-1]
    for delta in deltas:
        assert delta.logprobs, "every delta carries its tokens"
        assert "".join(entry.token for entry in delta.logprobs).strip() == delta.delta.strip()
        assert all(entry.logprob <= 0.0 and bytes(entry.bytes).decode() == entry.token for entry in delta.logprobs)
    assert len(done.logprobs) == sum(len(d.logprobs) for d in deltas)
    # Mostly confident on clear speech, and not all equal: real probabilities.
    mean = sum(math.exp(e.logprob) for e in done.logprobs) / len(done.logprobs)
    assert 0.5 < mean < 1.0 and len({round(e.logprob, 3) for e in done.logprobs}) > 5


def test_a_client_that_leaves_mid_stream_is_cancelled_and_frees_its_slot(server, http, long_call):
    cancelled_before = http.get("/health").json()["queue"]["cancelled"]
    with (
        httpx.Client(base_url=server.url, timeout=120) as client,
        long_call.open("rb") as audio,
        client.stream(
            "POST",
            "/v1/audio/transcriptions",
            data={"model": "whisper-1", "stream": "true", "response_format": "diarized_json"},
            files={"file": ("call.wav", audio, "audio/wav")},
        ) as reply,
    ):
        assert reply.status_code == 200
        for line in reply.iter_lines():
            if line.startswith("data: "):
                break  # the first delta; then hang up before the speakers
    wait_for(lambda: http.get("/health").json()["queue"]["in_flight"] == 0, timeout_s=60, what="the slot freed")
    assert http.get("/health").json()["queue"]["cancelled"] == cancelled_before + 1
