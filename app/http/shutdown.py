"""A bounded, graceful drain on SIGTERM (and SIGINT).

uvicorn's own shutdown closes the listening socket at once and then waits for requests in
flight without a limit: probes get "connection refused" and Docker (10 s) or Kubernetes
(30 s) kill the process mid-request. Here the first signal only starts a drain:
- the admission gate refuses new transcriptions (503) and readiness answers 503
  ``draining``, while liveness and the listener stay up;
- transcriptions in flight get ``grace_s`` to finish; what is left is cancelled (each gets
  a clean 503) and given a few seconds to answer;
- live sessions see the drain at once: each transcribes its open turn (within the same
  grace; a turn not done by then is cancelled), sends a last ``error`` event
  (``server_shutting_down``) and closes with 1012;
- then uvicorn's normal shutdown runs (lifespan end, scheduler closed).
A second signal exits at once.
"""

from __future__ import annotations

import logging
import threading
import time
from types import FrameType

import uvicorn

from app.control.admission import AdmissionGate
from app.live.session import CANCELLED_TURNS_SETTLE_S
from app.live.sessions import LiveSessions

logger = logging.getLogger("app.http.shutdown")

# Cancelled requests are answered (503) at once; this is how long those answers get to go out.
_CANCEL_SETTLE_S = 1.0


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, gate: AdmissionGate, live: LiveSessions, *, grace_s: float) -> None:
        super().__init__(config)
        self.gate = gate
        self.live = live
        self.grace_s = grace_s
        self._drain: threading.Thread | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain is not None:  # a second signal: stop now
            super().handle_exit(sig, frame)
            return
        self.gate.drain(self.grace_s)
        logger.info(
            "Draining: %d transcription(s) in flight get up to %.0f s; new ones get 503",
            self.gate.in_flight,
            self.grace_s,
        )
        self._drain = threading.Thread(target=self._finish, args=(sig, frame), name="drain", daemon=True)
        self._drain.start()

    def _finish(self, sig: int, frame: FrameType | None) -> None:
        started = time.monotonic()
        if not self.gate.wait_idle(self.grace_s):
            cancelled = self.gate.cancel_all("the server is shutting down")
            logger.warning("Grace period over: cancelled %d transcription(s)", cancelled)
            self.gate.wait_idle(_CANCEL_SETTLE_S)
        # Sessions stop transcribing when the grace ends (LiveSession.finish); then they get
        # time to cancel what they still decode and to say goodbye.
        if not self.live.wait_closed(self.gate.grace_left() + CANCELLED_TURNS_SETTLE_S + _CANCEL_SETTLE_S):
            logger.warning("%d live session(s) still open at the end of the grace period", self.live.open)
        logger.info("Drained in %.1f s; shutting down", time.monotonic() - started)
        super().handle_exit(sig, frame)
