"""What the service may fetch from the network at run time, applied once at start-up.

Only model weights are ever downloaded (users with the hub get the real models; the
embedded default needs none). With ``OFFLINE=true`` nothing is: the hub libraries are put
in offline mode (``HF_HUB_OFFLINE``, read by huggingface_hub, transformers and pyannote),
and the aligner cache refuses torchaudio downloads itself (torchaudio has no offline
switch). When downloads are allowed, they get a timeout: the hub's own, and a default
socket timeout for torchaudio's urllib download, which has none.
"""

from __future__ import annotations

import logging
import os
import socket
import sys

from app.config import Settings

logger = logging.getLogger(__name__)


def apply_download_policy(settings: Settings) -> None:
    timeout = f"{settings.download_timeout_s:g}"
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", timeout)
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", timeout)
    # Sockets the service itself opens are asyncio's (non-blocking, unaffected); this bounds
    # the blocking client sockets of model downloads that set no timeout of their own.
    socket.setdefaulttimeout(settings.download_timeout_s)
    if not settings.offline:
        return
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:  # imported before the settings were read (tests, embedding)
        constants.HF_HUB_OFFLINE = True  # type: ignore[attr-defined]
    logger.info("OFFLINE=true: models come from %s and installed packages only", settings.model_cache_dir)
