"""Known speakers through the routes with the fake pipeline: OpenAI's known_speaker_names[] and
known_speaker_references[] (data URLs, or file parts on /transcribe), the clips decoded and
checked, bad ones refused in words. Matching real voices: tests/e2e/test_known_speakers_server.py."""

from __future__ import annotations

import pytest

from tests.api.conftest import FakePipeline, submit, wait_until
from tests.support.clips import data_url, wav

pytestmark = pytest.mark.api


@pytest.fixture
def fake_pipeline() -> FakePipeline:
    fake = FakePipeline()
    fake.diarizer = object()  # loaded: diarized_json is available
    return fake


def _openai(client, audio: bytes, names: list[str], references: list[str], **form: str):
    fields: dict = {"model": "whisper-1", "response_format": "diarized_json", **form}
    fields |= {"known_speaker_names[]": names, "known_speaker_references[]": references}
    return client.post("/v1/audio/transcriptions", data=fields, files={"file": ("call.wav", audio, "audio/wav")})


def test_data_url_references_name_speakers_in_diarized_json(client, sample_bytes, fake_pipeline):
    reply = _openai(client, sample_bytes, ["Alice", "Bob"], [data_url(wav(3.0)), data_url(wav(5.0, 15.0))])
    assert reply.status_code == 200, reply.text
    assert [segment["speaker"] for segment in reply.json()["segments"]] == ["Alice", "SPEAKER_01"]
    [known] = fake_pipeline.known
    assert [k.name for k in known] == ["Alice", "Bob"]
    assert [round(k.audio.shape[0] / 16000, 1) for k in known] == [3.0, 5.0]
    _, options = fake_pipeline.calls[0]
    assert options.diarize and [name for name, _ in options.known_speakers] == ["Alice", "Bob"]


def test_references_as_file_parts_on_transcribe(client, sample_bytes, fake_pipeline):
    reply = client.post(
        "/transcribe",
        data={"known_speaker_names": "Alice"},
        files=[
            ("file", ("call.wav", sample_bytes, "audio/wav")),
            ("known_speaker_references", ("alice.wav", wav(4.0), "audio/wav")),
        ],
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["diarization"]["known_speakers"] == [{"name": "Alice", "speaker": "SPEAKER_00", "similarity": 0.93}]
    assert "Alice" in body["speakers"] and body["segments"][0]["words"][0]["speaker"] == "Alice"
    assert round(fake_pipeline.known[0][0].audio.shape[0] / 16000, 1) == 4.0


@pytest.mark.parametrize(
    ("names", "references", "words"),
    [
        (["Alice", "Bob"], [data_url(wav(3.0))], "No reference clip for 'Bob'"),
        ([], [data_url(wav(3.0))], "0 known_speaker_names but 1"),
        (["Alice", "Alice"], [data_url(wav(3.0)), data_url(wav(3.0))], "the same name twice"),
        (["Alice"], ["https://example.com/alice.wav"], "is a data URL"),
        (["Alice"], [data_url(wav(1.0))], "1.0 s long, too short"),
        (["Alice"], [data_url(wav(12.0))], "longer than 10 s"),
        (["Alice"], [data_url(wav(3.0, silent=True))], "is silent"),
        (["Alice"], [data_url(b"these are not audio bytes" * 100)], "is not audio"),
        (["Alice"], ["data:audio/wav;base64,@@@not-base64@@@"], "not valid base64"),
        (["Alice"], ["data:audio/wav,plain"], "not a base64 data URL"),
        (["  "], [data_url(wav(3.0))], "name is empty"),
    ],
)
def test_bad_references_are_422_in_words(client, sample_bytes, fake_pipeline, names, references, words):
    reply = _openai(client, sample_bytes, names, references)
    assert reply.status_code == 422, reply.text
    assert words in reply.json()["error"]["message"]
    assert fake_pipeline.calls == []


def test_known_speakers_with_diarize_false_are_contradictory(client, sample_bytes):
    reply = _openai(client, sample_bytes, ["Alice"], [data_url(wav(3.0))], response_format="json", diarize="false")
    assert reply.status_code == 422 and "diarize is false" in reply.json()["error"]["message"]


def test_more_than_eight_reference_parts_are_refused_before_they_are_held(client, sample_bytes):
    references = [data_url(wav(2.5))] * 9
    reply = _openai(client, sample_bytes, [f"P{i}" for i in range(9)], references)
    assert reply.status_code == 400 and "More than 8 known_speaker_references" in reply.text


def test_a_job_checks_its_references_at_submission_and_runs_with_them(make_jobs_client, sample_bytes, fake_pipeline):
    client = make_jobs_client()
    bad = submit(client, sample_bytes, known_speaker_names="Alice", known_speaker_references=data_url(wav(1.0)))
    assert bad.status_code == 422 and "too short" in bad.json()["error"]["message"]
    job = submit(client, sample_bytes, known_speaker_names="Alice", known_speaker_references=data_url(wav(3.0))).json()
    done = wait_until(client, job["id"])
    assert done["state"] == "succeeded", done
    assert done["result"]["diarization"]["known_speakers"][0]["name"] == "Alice"
    assert [k.name for k in fake_pipeline.known[-1]] == ["Alice"]
