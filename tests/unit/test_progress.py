"""A job's progress: stage weights over the stages it runs, never backwards, an estimate of the time left."""

from __future__ import annotations

import time

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
    progress = Progress(("asr",))
    progress.enter("asr")
    assert progress.snapshot().eta_s is None
    time.sleep(0.2)
    progress.advance(0.5)
    eta = progress.snapshot().eta_s
    assert eta is not None and 0.0 < eta < 1.0
