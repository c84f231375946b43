"""The voice book, /v1/speakers, with the fake pipeline: store, list, use by name on every
diarizing route, replace, delete; per tenant; bad clips refused in words."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from app.jobs.voices import MAX_VOICES
from tests.api.conftest import FakePipeline, submit, wait_until
from tests.support.clips import data_url, wav

pytestmark = pytest.mark.api

ALICE, BOB = "alice-key-0123456789", "bob-key-0123456789ab"


@pytest.fixture
def fake_pipeline() -> FakePipeline:
    fake = FakePipeline()
    fake.diarizer = object()
    return fake


def _store(client, name: str, clip: bytes, key: str | None = None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.post(
        "/v1/speakers", data={"name": name}, files={"file": ("v.wav", clip, "audio/wav")}, headers=headers
    )


def test_a_stored_voice_is_used_by_name_on_every_route(make_jobs_client, sample_bytes, fake_pipeline):
    client = make_jobs_client()
    stored = _store(client, "Ann", wav(4.0))
    assert stored.status_code == 201, stored.text
    assert stored.json()["name"] == "Ann" and stored.json()["seconds"] == 4.0
    assert [v["name"] for v in client.get("/v1/speakers").json()["data"]] == ["Ann"]
    assert client.get("/v1/speakers/Ann").json()["seconds"] == 4.0

    # A clip sent pairs with the first name; names past the clips come from the book.
    reply = client.post(
        "/v1/audio/transcriptions",
        data={
            "model": "whisper-1",
            "response_format": "diarized_json",
            "known_speaker_names[]": ["Ben", "Ann"],
            "known_speaker_references[]": [data_url(wav(3.0, 15.0))],
        },
        files={"file": ("call.wav", sample_bytes, "audio/wav")},
    )
    assert reply.status_code == 200, reply.text
    known = fake_pipeline.known[-1]
    assert [k.name for k in known] == ["Ben", "Ann"]
    assert [round(k.audio.shape[0] / 16000, 1) for k in known] == [3.0, 4.0]

    own = client.post("/transcribe", data={"known_speaker_names": "Ann"}, files={"file": ("c.wav", sample_bytes)})
    assert own.status_code == 200 and [k.name for k in fake_pipeline.known[-1]] == ["Ann"]
    job = submit(client, sample_bytes, known_speaker_names="Ann").json()
    assert wait_until(client, job["id"])["result"]["diarization"]["known_speakers"][0]["name"] == "Ann"


def test_a_name_neither_sent_nor_stored_is_422_pointing_at_the_book(make_jobs_client, sample_bytes):
    client = make_jobs_client()
    reply = client.post("/transcribe", data={"known_speaker_names": "Zoe"}, files={"file": ("c.wav", sample_bytes)})
    assert reply.status_code == 422
    assert "No reference clip for 'Zoe'" in reply.json()["error"]["message"]
    assert "POST /v1/speakers" in reply.json()["error"]["message"]
    assert submit(client, sample_bytes, known_speaker_names="Zoe").status_code == 422


def test_storing_again_replaces_and_delete_removes(make_jobs_client):
    client = make_jobs_client()
    _store(client, "Ann", wav(4.0))
    assert _store(client, "Ann", wav(6.0)).json()["seconds"] == 6.0
    assert len(client.get("/v1/speakers").json()["data"]) == 1
    assert client.delete("/v1/speakers/Ann").status_code == 204
    assert client.get("/v1/speakers/Ann").status_code == 404
    missing = client.delete("/v1/speakers/Ann")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "voice_not_found"


@pytest.mark.parametrize(
    ("clip", "words"),
    [
        (wav(1.0), "too short"),
        (wav(12.0), "longer than 10 s"),
        (b"not audio" * 200, "not audio"),
        (wav(3.0, silent=True), "silent"),
    ],
)
def test_a_bad_clip_is_refused_in_words_and_nothing_is_stored(make_jobs_client, clip, words):
    client = make_jobs_client()
    reply = _store(client, "Ann", clip)
    assert reply.status_code == 422 and words in reply.json()["error"]["message"]
    assert client.get("/v1/speakers").json()["data"] == []


def test_voices_are_per_tenant(make_jobs_client, sample_bytes):
    client = make_jobs_client(api_keys=f"alice:{ALICE},bob:{BOB}")
    assert _store(client, "Ann", wav(4.0), ALICE).status_code == 201
    bob = {"Authorization": f"Bearer {BOB}"}
    assert client.get("/v1/speakers", headers=bob).json()["data"] == []
    assert client.get("/v1/speakers/Ann", headers=bob).status_code == 404
    assert client.delete("/v1/speakers/Ann", headers=bob).status_code == 404
    reply = client.post(
        "/transcribe", data={"known_speaker_names": "Ann"}, files={"file": ("c.wav", sample_bytes)}, headers=bob
    )
    assert reply.status_code == 422  # Alice's voice is not Bob's to use
    assert client.get("/v1/speakers", headers={"Authorization": f"Bearer {ALICE}"}).json()["data"][0]["name"] == "Ann"


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("Eve\n\n99\n00:00:00,000 --> 00:59:59,000\nINJECTED CUE", "U+000A LINE FEED"),
        ("Eve\x00", "U+0000 NUL"),
        ("Eve\tTab", "U+0009 TAB"),
        ("Eve\u202eevil", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("Ev\u200be", "U+200B ZERO WIDTH SPACE"),
        ("a/b", "'/'"),
        ("../../etc/passwd", "'/'"),
        ("..", "only dots"),
        ("x" * 101, "at most 100 characters"),
    ],
)
def test_a_name_that_is_not_plain_data_is_refused_and_says_which_character(make_jobs_client, name, says):
    client = make_jobs_client()
    reply = _store(client, name, wav(4.0))
    assert reply.status_code == 422, reply.text
    assert says in reply.json()["error"]["message"]
    assert client.get("/v1/speakers").json()["data"] == []


def test_a_name_is_one_name_however_its_letters_were_typed(make_jobs_client):
    """ "Å" as one code point (NFC) and as A + ring (NFD) look the same: they are one voice."""
    client = make_jobs_client()
    assert _store(client, "\u00c5sa", wav(4.0)).status_code == 201
    assert _store(client, "A\u030asa", wav(6.0)).json()["name"] == "\u00c5sa"
    assert [v["seconds"] for v in client.get("/v1/speakers").json()["data"]] == [6.0]
    assert client.get("/v1/speakers/A%CC%8Asa").json()["name"] == "\u00c5sa"
    assert client.delete("/v1/speakers/A%CC%8Asa").status_code == 204


def test_every_stored_voice_can_be_read_and_deleted(make_jobs_client):
    """Markup in a name is data (escaped where it is written); names stored before names were
    checked — a slash, a decomposed letter — stay reachable through the API."""
    client = make_jobs_client()
    assert _store(client, "<img src=x onerror=alert(1)> & co", wav(4.0)).status_code == 201
    book = client.app.state.jobs.service.voices
    [tenant] = {row["tenant"] for row in book._store.run_sql("SELECT tenant FROM voices")}
    for legacy in ("a/b", "../../etc/passwd", "A\u030a"):
        book.put(tenant, legacy, data_url(wav(3.0)), 3.0)
    names = [v["name"] for v in client.get("/v1/speakers").json()["data"]]
    assert len(names) == 4
    for name in names:
        path = "/v1/speakers/" + quote(name, safe="")
        assert client.get(path).json()["name"] == name, name
        assert client.delete(path).status_code == 204, name
    assert client.get("/v1/speakers").json()["data"] == []


def test_a_full_book_is_a_409_that_says_so_with_no_retry(make_jobs_client):
    client = make_jobs_client()
    assert _store(client, "First", wav(4.0)).status_code == 201
    book = client.app.state.jobs.service.voices
    [tenant] = {row["tenant"] for row in book._store.run_sql("SELECT tenant FROM voices")}
    for index in range(MAX_VOICES - 1):
        assert book.put(tenant, f"voice {index}", "data:audio/wav;base64,", 3.0) is not None
    full = _store(client, "One more", wav(4.0))
    assert full.status_code == 409 and full.json()["error"]["code"] == "voice_book_full"
    assert f"holds {MAX_VOICES} voices" in full.json()["error"]["message"]
    assert "retry-after" not in full.headers
    assert _store(client, "First", wav(5.0)).status_code == 201, "replacing a stored voice still works"
