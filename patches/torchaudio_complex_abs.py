"""Rewrite torchaudio's complex ``.abs()`` in Kaldi features as ``sqrt(real² + imag²)``.

What it fixes: on a CUDA tensor, ``abs()`` of a complex tensor is a *jiterator* kernel —
compiled at run time by NVRTC. An NVRTC that predates the GPU (CUDA ≤ 12.8 on Blackwell
SM_121, e.g. the DGX Spark GB10) cannot compile it, so ``torchaudio.compliance.kaldi.fbank``
fails (or, where it can, costs a compile at the first request). pyannote's speaker-embedding
step calls ``fbank`` on the GPU. ``sqrt(real² + imag²)`` uses only precompiled elementwise
kernels and gives the same values (the magnitude; tested to atol 1e-5).
Upstream: pytorch/pytorch jiterator has no AOT fallback for unsupported archs; torchaudio
computes magnitudes with ``Tensor.abs()`` (torchaudio/compliance/kaldi.py).
Applies to: torchaudio 2.8 to 2.11 (lines below checked on 2.8.0 and 2.11.0, the image's). Any
other version is patched only if the exact lines are found; otherwise the build fails, so a
silent no-op is impossible. With torch 2.11 (CUDA 13, whose NVRTC compiles for sm_121) the
kernel would compile on GB10, but at the first request: the rewrite keeps that compile, and any
GPU newer than the image's NVRTC, out of the request path.
Remove when: torchaudio computes the magnitude without a jiterator kernel.

Usage:
    python patches/torchaudio_complex_abs.py            # patch the installed torchaudio
    python patches/torchaudio_complex_abs.py --check    # exit 0 only if it is patched
    python patches/torchaudio_complex_abs.py --file PATH [--check]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
from pathlib import Path

MARKER = "# patched: complex abs as sqrt(real^2 + imag^2), see patches/torchaudio_complex_abs.py"

# (original line, replacement lines) — indentation included, matched exactly.
REWRITES: tuple[tuple[str, str], ...] = (
    (
        "    power_spectrum = torch.max(fft.abs().pow(2.0), epsilon).log()  # size (m, padded_window_size // 2 + 1)",
        "    power_spectrum = torch.max(torch.sqrt(fft.real.pow(2) + fft.imag.pow(2)).pow(2.0), epsilon).log()"
        f"  {MARKER}",
    ),
    (
        "    spectrum = torch.fft.rfft(strided_input).abs()",
        "    spectrum = torch.fft.rfft(strided_input)\n"
        f"    spectrum = torch.sqrt(spectrum.real.pow(2) + spectrum.imag.pow(2))  {MARKER}",
    ),
)


class PatchError(RuntimeError):
    pass


def installed_kaldi_path() -> Path:
    spec = importlib.util.find_spec("torchaudio")  # locates the package without importing torch
    if spec is None or spec.origin is None:
        raise PatchError("torchaudio is not installed")
    return Path(spec.origin).parent / "compliance" / "kaldi.py"


def is_patched(source: str) -> bool:
    return all(replacement in source for _, replacement in REWRITES)


def patch_source(source: str) -> str:
    """Return the patched text; unchanged if already patched; PatchError if lines are missing."""
    patched = source
    for original, replacement in REWRITES:
        if replacement in patched:
            continue
        count = patched.count(original + "\n")
        if count != 1:
            raise PatchError(f"expected exactly one line {original.strip()!r}, found {count}")
        patched = patched.replace(original + "\n", replacement + "\n")
    return patched


def apply(path: Path) -> bool:
    """Patch ``path``; True if it changed.

    The new text goes to a new file that replaces the old one, never into the old file: uv
    installs packages as hard links into its cache, so writing in place would patch the
    cache, and with it every other environment that links the same file.
    """
    source = path.read_text()
    patched = patch_source(source)
    if patched == source:
        return False
    staged = path.with_name(path.name + ".patched")
    staged.write_text(patched)
    shutil.copymode(path, staged)
    os.replace(staged, path)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, help="kaldi.py to patch (default: the installed torchaudio's)")
    parser.add_argument("--check", action="store_true", help="only report; exit 1 if not patched")
    args = parser.parse_args(argv)
    try:
        path = args.file or installed_kaldi_path()
        if args.check:
            ok = is_patched(path.read_text())
            print(f"{path}: {'patched' if ok else 'NOT patched'}")
            return 0 if ok else 1
        changed = apply(path)
    except (PatchError, OSError) as exc:
        print(f"torchaudio patch failed: {exc}", file=sys.stderr)
        return 1
    print(f"{path}: {'patched' if changed else 'already patched'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
