"""RequestActivity: what the diarizer's loading after ready steps aside for."""

import threading
import time

from app.control.activity import RequestActivity


def test_idle_until_a_request_works_and_again_when_it_only_waits():
    activity = RequestActivity()
    assert activity.wait_until_idle(0.0)
    with activity.working():
        assert not activity.wait_until_idle(0.05)
        with activity.working(-1):  # waiting for a stage still loading: counts as idle
            assert activity.wait_until_idle(0.0)
        assert not activity.wait_until_idle(0.0)
    assert activity.wait_until_idle(0.0)


def test_a_waiter_wakes_as_soon_as_the_last_request_is_done():
    activity = RequestActivity()
    release = threading.Event()

    def request() -> None:
        with activity.working():
            release.wait()

    workers = [threading.Thread(target=request) for _ in range(3)]
    for worker in workers:
        worker.start()
    time.sleep(0.05)
    threading.Timer(0.2, release.set).start()
    started = time.monotonic()
    assert activity.wait_until_idle(10.0)
    assert 0.1 < time.monotonic() - started < 5.0
    for worker in workers:
        worker.join()
