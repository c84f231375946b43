"""A randomly initialised English aligner with the real one's shape, where the service loads it.

WhisperX aligns English with torchaudio's ``WAV2VEC2_ASR_BASE_960H`` (wav2vec2 base, 95 M
parameters). Its weights cannot be downloaded here, but a model of the same architecture with
random weights costs what the real one costs: the same convolutions and transformer on the
GPU, and a CTC trellis and backtracking over the same text on the CPU. The times it gives are
meaningless; the seconds it takes are the real aligner's.

The file goes where torchaudio's loader (``torch.hub.load_state_dict_from_url`` with the
service's ``MODEL_CACHE_DIR/align``) finds it, so the service loads it through the path users
take with ``OFFLINE=true``, untouched:

    python -m tests.support.random_aligner MODEL_CACHE_DIR
"""

from __future__ import annotations

import argparse
from pathlib import Path

BUNDLE = "WAV2VEC2_ASR_BASE_960H"  # WhisperX's default English aligner


def write_random_aligner(model_cache_dir: Path, seed: int = 0) -> Path:
    """Write the random checkpoint as torchaudio stores the real one; returns its path."""
    import torch
    import torchaudio

    bundle = getattr(torchaudio.pipelines, BUNDLE)
    params = dict(bundle._params)
    # The published checkpoint has fairseq's 32 outputs; torchaudio drops the rows of the
    # <pad>, </s> and <unk> tokens (``_remove_aux_axis``) when it loads it.
    params["aux_num_out"] = params["aux_num_out"] + len(bundle._remove_aux_axis)
    torch.manual_seed(seed)
    model = torchaudio.models.wav2vec2_model(**params)
    target = model_cache_dir / "align" / Path(bundle._path).name
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_cache_dir", type=Path, help="the service's MODEL_CACHE_DIR")
    args = parser.parse_args()
    print(write_random_aligner(args.model_cache_dir))


if __name__ == "__main__":
    main()
