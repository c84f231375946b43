"""The real service on the bundled multilingual Whisper base, as a user drives it with curl."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.support.scoring import read_stm_text, word_error_rate

SAMPLE_SECONDS = 30.0
_SRT_TIMING = re.compile(r"^(\d{2}):(\d{2}):(\d{2}),(\d{3}) --> (\d{2}):(\d{2}):(\d{2}),(\d{3})$")
_VTT_TIMING = re.compile(r"^(\d{2}):(\d{2}):(\d{2})\.(\d{3}) --> (\d{2}):(\d{2}):(\d{2})\.(\d{3})$")


def _transcribe(http, path, **form):
    with open(path, "rb") as f:
        return http.post("/transcribe", files={"file": (path.name, f)}, data=form)


@pytest.fixture(scope="module")
def sample_result(http, sample_wav):
    reply = _transcribe(http, sample_wav)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_health_describes_the_cpu_default(http):
    body = http.get("/health").json()
    assert body["status"] in ("healthy", "degraded")
    assert body["device"] == "cpu" and body["cuda_available"] is False and body["gpu"] is None
    assert body["model"] == "bundled-base"
    assert body["compute_type"] == "int8"
    assert body["stages"]["asr"]["loaded"] is True
    for stage in ("alignment", "diarization"):
        info = body["stages"][stage]
        assert info["loaded"] or info["detail"], f"{stage} is missing without a reason"
    assert body["warmup"]["total_s"] > 0
    assert body["jit_cache"]["environment"].keys() >= {"CUDA_CACHE_PATH", "CUDA_FORCE_PTX_JIT"}


def test_sample_call_is_transcribed_accurately(sample_result, sample_stm):
    reference = read_stm_text(sample_stm)
    wer = word_error_rate(reference, sample_result["text"])
    assert wer <= 0.30, f"WER {wer:.3f}: {sample_result['text']!r}"
    assert sample_result["language"] == "en"
    assert sample_result["language_probability"] > 0.8
    assert sample_result["duration"] == pytest.approx(SAMPLE_SECONDS, abs=0.01)
    assert sample_result["word_timestamps_method"] in ("wav2vec2", "whisper")


def test_every_word_has_sane_times_and_a_score(sample_result):
    words = sample_result["word_segments"]
    assert len(words) >= 50
    starts = [w["start"] for w in words]
    assert starts == sorted(starts), "word start times go backwards"
    for w in words:
        assert 0.0 <= w["start"] <= w["end"] <= SAMPLE_SECONDS, w
        assert w["score"] is None or 0.0 <= w["score"] <= 1.0
    # Speech starts at ~6.7 s in the sample (the reference turns); the times must say so.
    assert 6.0 < words[0]["start"] < 7.5


def test_segments_hold_their_words(sample_result):
    for segment in sample_result["segments"]:
        assert segment["words"]
        assert segment["start"] <= segment["words"][0]["start"]
        assert segment["end"] >= segment["words"][-1]["end"]


def _parse_cues(text: str, timing: re.Pattern[str]) -> list[tuple[float, float, str]]:
    cues = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = timing.match(line)
        if match:
            h1, m1, s1, ms1, h2, m2, s2, ms2 = map(int, match.groups())
            start = h1 * 3600 + m1 * 60 + s1 + ms1 / 1000
            end = h2 * 3600 + m2 * 60 + s2 + ms2 / 1000
            cues.append((start, end, lines[i + 1]))
    return cues


def test_srt_parses(http, sample_wav, sample_result):
    reply = _transcribe(http, sample_wav, output="srt")
    assert reply.status_code == 200
    blocks = reply.text.strip().split("\n\n")
    assert [b.splitlines()[0] for b in blocks] == [str(i) for i in range(1, len(blocks) + 1)]
    cues = _parse_cues(reply.text, _SRT_TIMING)
    assert len(cues) == len(sample_result["segments"]) == len(blocks)
    assert all(0 <= start <= end <= SAMPLE_SECONDS for start, end, _ in cues)
    assert all(text.strip() for _, _, text in cues)


def test_vtt_parses(http, sample_wav, sample_result):
    reply = _transcribe(http, sample_wav, output="vtt")
    assert reply.status_code == 200
    assert reply.text.startswith("WEBVTT\n\n")
    cues = _parse_cues(reply.text, _VTT_TIMING)
    assert len(cues) == len(sample_result["segments"])
    assert [c[0] for c in cues] == sorted(c[0] for c in cues)


def test_compressed_and_video_containers(http, sample_wav, media_dir, sample_result):
    mp3 = media_dir / "call.mp3"
    webm = media_dir / "call.webm"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(sample_wav), str(mp3)], check=True)
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "color=c=black:s=64x64:d=30",
         "-i", str(sample_wav), "-shortest", "-c:v", "libvpx", "-c:a", "libopus", str(webm)],
        check=True,
    )  # fmt: skip
    for path in (mp3, webm):
        reply = _transcribe(http, path, language="en")
        assert reply.status_code == 200, reply.text
        assert word_error_rate(sample_result["text"], reply.json()["text"]) < 0.2


def test_german_speech_is_identified(http, media_dir):
    clip = media_dir / "deutsch.wav"
    text = (
        "Guten Tag, meine Damen und Herren. Heute sprechen wir über das Wetter in Berlin "
        "und über die Pläne für das kommende Wochenende. Vielen Dank für Ihre Aufmerksamkeit."
    )
    subprocess.run(["espeak-ng", "-v", "de", "-s", "150", "-w", str(clip), text], check=True)
    reply = _transcribe(http, clip)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["language"] == "de", body
    assert body["language_probability"] > 0.5


def test_sample_call_is_diarized_offline_by_default(http, sample_result):
    """No token and no hub here, so `DIARIZER=auto` falls back to the offline diarizer, and says so."""
    stage = http.get("/health").json()["stages"]["diarization"]
    assert stage["loaded"] is True and stage["model"] == "offline"
    assert "HF_TOKEN" in stage["detail"]
    diarization = sample_result["diarization"]
    assert diarization["performed"] is True and diarization["diarizer"] == "offline"
    assert sample_result["num_speakers"] == 2
    assert {t["speaker"] for t in diarization["turns"]} == set(sample_result["speakers"])
    labelled = [w for w in sample_result["word_segments"] if w["speaker"]]
    assert len(labelled) >= 0.9 * len(sample_result["word_segments"])


def test_bad_files_get_4xx_and_the_server_carries_on(http, media_dir, sample_wav):
    junk = media_dir / "junk.mp3"
    junk.write_bytes(b"ID3" + bytes(range(256)) * 40)
    reply = _transcribe(http, junk)
    assert 400 <= reply.status_code < 500
    assert reply.json()["error"]["code"] in ("unsupported_media", "bad_request")

    truncated = media_dir / "truncated.wav"
    truncated.write_bytes(sample_wav.read_bytes()[:20])
    assert 400 <= _transcribe(http, truncated).status_code < 500

    assert http.get("/health").status_code == 200
    cut = media_dir / "cut.wav"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", str(sample_wav), "-ss", "6", "-t", "4", str(cut)], check=True
    )
    reply = _transcribe(http, cut)
    assert reply.status_code == 200
    assert "hello" in reply.json()["text"].lower()


def test_silence_is_a_200_with_no_segments(http, media_dir):
    silence = media_dir / "silence.wav"
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "anullsrc=r=16000:cl=mono",
            "-t",
            "5",
            str(silence),
        ],
        check=True,
    )
    reply = _transcribe(http, silence)
    assert reply.status_code == 200
    assert reply.json()["segments"] == []


def test_zz_no_temporary_file_is_left_behind(upload_dir, http):
    """Runs last in this module (name order within the file): every upload above is gone."""
    assert http.get("/health").status_code == 200
    assert list(upload_dir.iterdir()) == []
