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


def test_onnxruntime_telemetry_is_off(tmp_path):
    """onnxruntime 1.31 writes a telemetry device id under ~/.cache/Microsoft when its 1DS
    telemetry is on (checked: it does without the app, in the first probe below). It turns
    itself off when CI is set, so the probes run without it, as on a user's machine."""
    session = (
        "import os, faster_whisper, onnxruntime\n"
        "model = os.path.join(os.path.dirname(faster_whisper.__file__), 'assets', 'silero_vad_v6.onnx')\n"
        "onnxruntime.InferenceSession(model, providers=['CPUExecutionProvider'])\n"
    )
    for name, prelude in (("without_app", ""), ("with_app", "import app\n")):
        home = tmp_path / name
        home.mkdir()
        env = {**os.environ, "HOME": str(home), "ORT_DISABLE_TELEMETRY": "0", "TMPDIR": str(home), "CI": ""}
        subprocess.run([sys.executable, "-c", prelude + session], env=env, capture_output=True, check=True, timeout=120)
    telemetry = "Microsoft/DeveloperTools/.onnxruntime"
    assert (tmp_path / "without_app" / ".cache" / telemetry).is_dir(), "the probe no longer sees ORT telemetry"
    assert not (tmp_path / "with_app" / ".cache" / "Microsoft").exists()
    assert not list((tmp_path / "with_app").glob("*.ses"))


def test_a_torchcodec_that_cannot_load_prints_nothing_at_pyannotes_import():
    """pyannote.audio warns at import when torchcodec cannot load (aarch64's wheel links NVIDIA NPP);
    the service never decodes with it, so that one warning is silenced, and only that one."""
    code = (
        "import sys; sys.modules['torchcodec'] = None\n"  # as if its library could not load
        "import warnings, app\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.warn('another warning')\n"
        "    import pyannote.audio\n"
        "print([str(w.message).strip()[:30] for w in caught])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "['another warning']"
