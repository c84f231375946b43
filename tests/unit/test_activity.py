"""RequestActivity: what the diarizer's loading after ready steps aside for."""

import threading

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
    inside = threading.Barrier(4)  # three requests and this test
    release = threading.Event()

    def request() -> None:
        with activity.working():
            inside.wait(10)
            release.wait(10)

    workers = [threading.Thread(target=request) for _ in range(3)]
    for worker in workers:
        worker.start()
    inside.wait(10)  # all three are working
    woke: list[bool] = []
    waiter = threading.Thread(target=lambda: woke.append(activity.wait_until_idle(30.0)))
    waiter.start()
    assert not activity.wait_until_idle(0.0)
    assert not woke, "the waiter returned while requests still worked"
    release.set()
    waiter.join(30)
    assert woke == [True]
    for worker in workers:
        worker.join(10)
