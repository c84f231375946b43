"""Step timings and the process's age (start-up reports both)."""

import subprocess
import sys
import threading
import time

from app.runtime.timing import StepTimer, process_age_s


def test_threads_add_to_one_step():
    timer = StepTimer()

    def work() -> None:
        with timer("step"):
            time.sleep(0.05)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert timer.timings["step"] >= 0.2  # four threads' 0.05 s each, added (not the longest one)


def test_a_process_knows_how_long_ago_it_started():
    code = "import time; time.sleep(0.5); from app.runtime.timing import process_age_s; print(process_age_s())"
    age = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert 0.5 <= age < 30.0
    mine = process_age_s()
    assert mine is not None and mine > 0
