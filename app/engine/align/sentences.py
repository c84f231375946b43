"""Make sure NLTK's Punkt sentence splitter exists before ``whisperx.align`` asks for it.

``whisperx.align`` splits each segment into sentences with NLTK's ``punkt_tab`` data and, when
that data is missing, calls ``nltk.download`` from inside the request — a network call that
fails offline. The container image installs the real data; everywhere else we fall back to an
untrained Punkt model (empty parameter files), which still splits on sentence punctuation but
knows no abbreviations. Either way no request ever tries to download.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

logger = logging.getLogger(__name__)

_PUNKT_FILES = ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab")
_lock = threading.Lock()


def ensure_sentence_splitter(language: str, data_dir: Path) -> str:
    """Return where the splitter for ``language`` comes from: ``installed`` or ``untrained``."""
    import nltk
    from whisperx.utils import PUNKT_LANGUAGES

    punkt_name = PUNKT_LANGUAGES.get(language, "english")
    resource = f"tokenizers/punkt_tab/{punkt_name}/"
    with _lock:
        if str(data_dir) not in nltk.data.path:
            nltk.data.path.append(str(data_dir))
        try:
            nltk.data.find(resource)
            return "installed"
        except LookupError:
            pass
        target = data_dir / "tokenizers" / "punkt_tab" / punkt_name
        target.mkdir(parents=True, exist_ok=True)
        for name in _PUNKT_FILES:
            (target / name).touch()
        logger.warning(
            "NLTK punkt_tab data for %s is not installed; using an untrained sentence splitter "
            "(install it with `python -m nltk.downloader punkt_tab`)",
            punkt_name,
        )
        return "untrained"
