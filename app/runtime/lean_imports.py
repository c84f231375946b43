"""First imports of the model stages, leaving out what no stage uses (seconds of start-up).

``pyannote.audio`` (the VAD and the diarizer) imports Lightning; Lightning imports torchmetrics
to read its version; torchmetrics' text and multimodal metrics (BERTScore, InfoLM, CLIPScore)
import transformers' auto classes whenever transformers is installed, as it is for WhisperX's
Hugging Face aligners. Nothing here computes those metrics. On the H100 host the default
configuration's imports took 21.2–24.4 s with that import and 17.8–18.6 s without it.

torchmetrics asks lightning_utilities' ``RequirementCache`` whether transformers is there.
While ``pyannote.audio`` is first imported, that question is answered "no"; torchmetrics keeps
the answer in its own flags, so only its metrics that need transformers are affected. Every
other requirement, and every question asked afterwards, gets the real check.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

UNUSED_BY_TORCHMETRICS = "transformers"


def import_stage_module(name: str) -> ModuleType:
    """``importlib.import_module(name)``; for pyannote.audio, without torchmetrics' transformers."""
    if name.split(".")[0] == "pyannote" and "torchmetrics" not in sys.modules:
        with requirement_hidden(UNUSED_BY_TORCHMETRICS):
            return importlib.import_module(name)
    return importlib.import_module(name)


@contextmanager
def requirement_hidden(package: str) -> Iterator[None]:
    """lightning_utilities' ``RequirementCache`` reports ``package`` as not installed, for a while."""
    try:
        from lightning_utilities.core.imports import RequirementCache
    except ImportError:  # no Lightning, nothing that would ask
        yield
        return
    real_check = RequirementCache._check_requirement

    def check(cache: RequirementCache) -> None:
        if _names(cache.requirement, package):
            cache.available = False
            cache.message = f"{package} is not imported by this service's stages"
            return
        real_check(cache)

    RequirementCache._check_requirement = check  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        RequirementCache._check_requirement = real_check  # type: ignore[method-assign]


def _names(requirement: str | None, package: str) -> bool:
    """Whether a requirement string ("transformers>=4.4.0", "transformers[torch]") is for ``package``."""
    name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement or "")
    return name is not None and re.sub(r"[-_.]+", "-", name.group(1)).lower() == package
