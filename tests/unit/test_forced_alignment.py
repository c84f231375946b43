"""forced_alignment's list helpers do what WhisperX's pandas calls do."""

from __future__ import annotations

import math
import random

import pandas as pd
import pytest
from whisperx.utils import interpolate_nans

from app.engine.align.forced import _interpolate, _merge_sentences

NAN = float("nan")


def _same(a: list[float], b: list[float]) -> bool:
    return all((math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("seed", range(200))
def test_interpolation_matches_whisperx_interpolate_nans(seed):
    rng = random.Random(seed)
    values = [NAN if rng.random() < 0.5 else round(rng.uniform(0, 30), 3) for _ in range(rng.randint(1, 9))]
    expected = interpolate_nans(pd.Series(values, dtype=float), method="nearest").tolist()
    assert _same(_interpolate(values), expected), values


def test_sentences_with_equal_times_merge_and_come_out_sorted_as_pandas_groups_them():
    sentences = [
        {"text": "b", "start": 2.0, "end": 3.0, "words": [{"word": "b"}], "avg_logprob": -0.1},
        {"text": "a", "start": 1.0, "end": 2.0, "words": [{"word": "a"}], "avg_logprob": -0.1},
        {"text": "c", "start": 2.0, "end": 3.0, "words": [{"word": "c"}], "avg_logprob": -0.1},
        {"text": "d", "start": NAN, "end": NAN, "words": [], "avg_logprob": -0.1},
    ]
    frame = pd.DataFrame(sentences)
    frame["start"] = interpolate_nans(frame["start"])
    frame["end"] = interpolate_nans(frame["end"])
    expected = (
        frame.groupby(["start", "end"], as_index=False)
        .agg({"text": " ".join, "words": "sum", "avg_logprob": "first"})
        .to_dict("records")
    )
    assert _merge_sentences(sentences, -0.1) == expected
