"""Known speakers on the real server (bundled base, the offline diarizer) with real and
synthetic voices: through the openai SDK's own known_speaker_names / known_speaker_references,
through extra_body, and as file parts on /transcribe. The accuracy over many conversations is
bench/known_speakers.py's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openai
import pytest

from app.engine.audio import read_pcm16_wav
from app.engine.speakers.references import wav_bytes, wav_data_url
from tests.support.conversations import VOICES, synthesise_clip, tools_available

pytestmark = pytest.mark.e2e
RATE = 16_000


data_url = wav_data_url


def turns_of(rttm: Path) -> list[tuple[float, float, str]]:
    rows = [line.split() for line in rttm.read_text().splitlines()]
    return [(float(r[3]), float(r[3]) + float(r[4]), r[7]) for r in rows]


def speaker_at(turns: list[tuple[float, float, str]], start: float, end: float) -> str | None:
    middle = (start + end) / 2
    inside = [t for t in turns if t[0] <= middle <= t[1]]
    return inside[0][2] if len(inside) == 1 else None  # not in a pause, not overlapped


def test_the_sdk_names_a_real_speaker_from_a_reference_clip(sdk, sample_wav):
    """The call's speaker90 gets a name from one of its own turns (10.6–14.7 s); speaker91 has none."""
    call = read_pcm16_wav(sample_wav)
    reference = call[int(10.6 * RATE) : int(14.6 * RATE)]
    with sample_wav.open("rb") as audio:
        answer = sdk.audio.transcriptions.create(
            model="whisper-1",
            file=audio,
            response_format="diarized_json",
            known_speaker_names=["Ann"],
            known_speaker_references=[data_url(reference)],
        )
    turns = turns_of(sample_wav.with_suffix(".rttm"))
    labels = {segment.speaker for segment in answer.segments}
    assert "Ann" in labels
    for segment in answer.segments:
        if segment.speaker == "Ann":  # never speaker91, who has no reference
            assert speaker_at(turns, segment.start, segment.end) in ("speaker90", None), segment
    assert all(label == "Ann" or label.startswith("SPEAKER_") for label in labels)


def test_the_transcribe_route_takes_reference_file_parts_and_extra_body_works_too(http, sdk, tmp_path):
    if not tools_available():
        pytest.fail("espeak-ng and sox are needed (scripts/bootstrap.sh dev installs them)")
    voices = VOICES[0], VOICES[3]  # two voices the encoder tells apart
    lines = ("We need a decision on the budget by the end of the month.", "That sounds good to me.",
             "The new office opens in the spring.", "Could you repeat the last part of that?")  # fmt: skip
    pieces, truth, cursor = [], [], 0
    for index, line in enumerate(lines):
        clip = synthesise_clip(voices[index % 2], line, tmp_path).astype(np.float32) / 32768
        pieces += [clip, np.zeros(RATE // 2, np.float32)]
        truth.append((cursor / RATE, (cursor + len(clip)) / RATE, ("Kay", "Moss")[index % 2]))
        cursor += len(clip) + RATE // 2
    conversation = wav_bytes(np.concatenate(pieces))
    references = [
        synthesise_clip(voice, "Thanks for joining the call this morning, I looked at the numbers.", tmp_path)
        for voice in voices
    ]
    files = [("file", ("talk.wav", conversation, "audio/wav"))] + [
        ("known_speaker_references[]", (f"{n}.wav", wav_bytes(r.astype(np.float32) / 32768), "audio/wav"))
        for n, r in zip(("Kay", "Moss"), references, strict=True)
    ]
    reply = http.post("/transcribe", data={"known_speaker_names[]": ["Kay", "Moss"]}, files=files)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert {m["name"] for m in body["diarization"]["known_speakers"]} == {"Kay", "Moss"}
    placed = [(w, speaker_at(truth, w["start"], w["end"])) for w in body["word_segments"]]
    right = sum(w["speaker"] == voice for w, voice in placed if voice)
    assert right / sum(1 for _, voice in placed if voice) >= 0.9

    extra = sdk.audio.transcriptions.create(
        model="whisper-1",
        file=("talk.wav", conversation),
        response_format="diarized_json",
        extra_body={
            "known_speaker_names": ["Kay", "Moss"],
            "known_speaker_references": [data_url(r.astype(np.float32) / 32768) for r in references],
        },
    )
    assert {segment.speaker for segment in extra.segments} == {"Kay", "Moss"}


def test_a_bad_reference_is_refused_in_words_through_the_sdk(sdk, sample_wav):
    short = read_pcm16_wav(sample_wav)[int(10.6 * RATE) : int(11.4 * RATE)]
    with sample_wav.open("rb") as audio, pytest.raises(openai.UnprocessableEntityError) as refused:
        sdk.audio.transcriptions.create(
            model="whisper-1",
            file=audio,
            response_format="diarized_json",
            known_speaker_names=["Ann"],
            known_speaker_references=[data_url(short)],
        )
    assert "too short" in str(refused.value) and "Ann" in str(refused.value)
