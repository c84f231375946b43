"""Accuracy measures shared by the benchmarks and the end-to-end tests.

Word error rate normalisation: lower-case, punctuation removed (apostrophes inside words
kept, so "don't" stays one word), whitespace collapsed. No number or spelling rewriting.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_PUNCTUATION = re.compile(r"[^\w\s']|(?<!\w)'|'(?!\w)")


def normalize_text(text: str) -> str:
    return " ".join(_PUNCTUATION.sub(" ", text.lower()).split())


def word_error_rate(reference: str, hypothesis: str) -> float:
    import jiwer

    return float(jiwer.wer(normalize_text(reference), normalize_text(hypothesis)))


def read_stm_turns(path: Path) -> list[tuple[float, float, str]]:
    """The turns of an STM file (``file channel speaker start end words...``): (start, end,
    words), in time order."""
    rows = []
    for line in path.read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and not line.startswith(";;"):
            rows.append((float(fields[3]), float(fields[4]), fields[5]))
    return sorted(rows)


def read_stm_text(path: Path) -> str:
    """The words of an STM file, in time order."""
    return " ".join(text for _, _, text in read_stm_turns(path))


def reference_annotation(rttm: Path) -> Any:
    from pyannote.database.util import load_rttm

    (annotation,) = load_rttm(str(rttm)).values()  # one recording per file
    return annotation


def hypothesis_annotation(turns: list[dict[str, Any]]) -> Any:
    from pyannote.core import Annotation, Segment

    annotation = Annotation()
    for index, turn in enumerate(turns):
        annotation[Segment(turn["start"], turn["end"]), index] = turn["speaker"]
    return annotation
