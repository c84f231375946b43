"""A job's progress: stage weights over the stages it runs, never backwards, an estimate of the time left."""

from __future__ import annotations

from app.control.progress import Progress


def test_fraction_moves_forward_over_the_planned_stages() -> None:
    progress = Progress()
    progress.plan(("decode", "vad", "asr"))
    progress.audio(600.0)
    seen = []
    for stage in ("decode", "vad", "asr"):
        progress.enter(stage)
        seen.append(progress.snapshot().fraction)
    progress.advance(0.5, audio_seconds_done=300.0)
    halfway = progress.snapshot()
    progress.advance(0.4)  # a late, smaller report does not move it back
    assert progress.snapshot().fraction == halfway.fraction
    assert seen == sorted(seen) and seen[0] == 0.0
    assert 0.5 < halfway.fraction < 1.0 and halfway.stage == "asr" and halfway.audio_seconds_done == 300.0
    progress.finish()
    done = progress.snapshot()
    assert done.fraction == 1.0 and done.audio_seconds_done == 600.0 and done.eta_s == 0.0


def test_the_estimate_appears_once_there_is_a_pace() -> None:
    now = [100.0]
    progress = Progress(("asr",), clock=lambda: now[0])
    progress.enter("asr")
    assert progress.snapshot().eta_s is None
    now[0] += 12.0
    progress.advance(0.02)  # under 5 % done: no pace to go by yet
    assert progress.snapshot().eta_s is None
    progress.advance(0.5)
    assert progress.snapshot().eta_s == 12.0  # half done in 12 s: 12 s to go
