"""pyannote.audio 4 sends OTLP traces unless told not to; the service must never phone home."""

import os
import subprocess
import sys


def test_importing_app_turns_pyannote_metrics_off_even_if_the_environment_enabled_them():
    code = "import app\nfrom pyannote.audio.telemetry.metrics import is_metrics_enabled\nprint(is_metrics_enabled())\n"
    env = {**os.environ, "PYANNOTE_METRICS_ENABLED": "1"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_metrics_are_off_in_this_process():
    from pyannote.audio.telemetry.metrics import is_metrics_enabled

    assert "app" in sys.modules, "the test suite imports app first, as the server does"
    assert not is_metrics_enabled()
