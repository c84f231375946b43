"""The torchaudio rewrite: applied to a copy of the installed kaldi.py, same numbers as before."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "patches"))

from torchaudio_complex_abs import (  # noqa: E402
    REWRITES,
    PatchError,
    apply,
    installed_kaldi_path,
    is_patched,
    main,
    patch_source,
)


def _original_source() -> str:
    """The installed kaldi.py as torchaudio ships it (CI's copy is already patched)."""
    source = installed_kaldi_path().read_text()
    for original, replacement in REWRITES:
        source = source.replace(replacement, original)
    return source


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def kaldi_pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kaldi")
    original = folder / "kaldi_original.py"
    patched = folder / "kaldi_patched.py"
    original.write_text(_original_source())
    patched.write_text(_original_source())
    assert apply(patched) is True
    return _load(original, "kaldi_original"), _load(patched, "kaldi_patched")


@pytest.fixture(scope="module")
def waveform(sample_wav):
    from app.engine.audio import decode_audio

    audio = decode_audio(sample_wav, timeout_s=30, max_seconds=60)
    return torch.from_numpy(audio[: 10 * 16000]).unsqueeze(0)


@pytest.mark.parametrize("use_power", [True, False])
def test_fbank_is_unchanged(kaldi_pair, waveform, use_power):
    original, patched = kaldi_pair
    kwargs = {"num_mel_bins": 80, "sample_frequency": 16000, "dither": 0.0, "use_power": use_power}
    expected = original.fbank(waveform, **kwargs)
    actual = patched.fbank(waveform, **kwargs)
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def test_spectrogram_is_unchanged(kaldi_pair, waveform):
    original, patched = kaldi_pair
    expected = original.spectrogram(waveform, dither=0.0)
    torch.testing.assert_close(patched.spectrogram(waveform, dither=0.0), expected, atol=1e-5, rtol=1e-5)


def test_no_complex_abs_is_left(kaldi_pair):
    _, patched = kaldi_pair
    source = Path(patched.__file__).read_text()
    assert "rfft(strided_input).abs()" not in source
    assert "fft.abs()" not in source


def test_applying_twice_changes_nothing(tmp_path):
    target = tmp_path / "kaldi.py"
    target.write_text(_original_source())
    assert apply(target) is True
    once = target.read_text()
    assert apply(target) is False
    assert target.read_text() == once
    assert is_patched(once)


def test_an_unexpected_torchaudio_fails_loudly():
    with pytest.raises(PatchError, match="expected exactly one line"):
        patch_source("import torch\n# a future kaldi.py without the lines\n")


def test_check_mode_reports(tmp_path, capsys):
    target = tmp_path / "kaldi.py"
    target.write_text(_original_source())
    assert main(["--file", str(target), "--check"]) == 1
    assert main(["--file", str(target)]) == 0
    assert main(["--file", str(target), "--check"]) == 0
    assert "patched" in capsys.readouterr().out


def test_the_installed_torchaudio_is_patched():
    """scripts/bootstrap.sh (CI, serve.sh and the image) applies the patch."""
    assert is_patched(installed_kaldi_path().read_text()), "run scripts/bootstrap.sh"


def test_a_hard_linked_install_leaves_the_other_link_alone(tmp_path):
    """uv installs by hard-linking its cache: patching one environment must not patch the cache."""
    cache = tmp_path / "cache-kaldi.py"
    cache.write_text(_original_source())
    installed = tmp_path / "kaldi.py"
    installed.hardlink_to(cache)
    assert apply(installed)
    assert is_patched(installed.read_text())
    assert not is_patched(cache.read_text()), "the cache's copy changed"
    assert not list(tmp_path.glob("*.patched"))
