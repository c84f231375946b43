"""Errors a client can act on, raised by the services (plain Python, no web framework here).

Each class fixes the HTTP status and the error code; ``app/http/error_handlers.py`` is the one
place that turns these (and every other exception) into an HTTP answer.
"""

from __future__ import annotations

# Seconds a 503 asks the client to wait: overload, a full budget, a cancelled or not-ready service.
RETRY_AFTER_SECONDS = 5


def retry_later(seconds: int = RETRY_AFTER_SECONDS) -> dict[str, str]:
    return {"Retry-After": str(seconds)}


class ServiceError(Exception):
    """An error a client can act on. Subclasses fix the status and the code."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers
        self.param = param  # the request field at fault, where there is one (OpenAI's error shape names it)


class EmptyUpload(ServiceError):
    code = "empty_file"


class MissingFile(ServiceError):
    code = "missing_file"


class UndecodableAudio(ServiceError):
    status_code = 415
    code = "unsupported_media"


class UploadTooLarge(ServiceError):
    status_code = 413
    code = "payload_too_large"


class DeclaredTooLong(UploadTooLarge):
    """Refused on what the file's header says, before decoding: the header may lie about a short file."""

    def __init__(self, message: str, *, declared_s: float) -> None:
        super().__init__(message)
        self.declared_s = declared_s


class InvalidParameter(ServiceError):
    status_code = 422
    code = "invalid_parameter"


class NotReady(ServiceError):
    status_code = 503
    code = "not_ready"


class Busy(ServiceError):
    status_code = 503
    code = "busy"


class GpuOutOfMemory(ServiceError):
    status_code = 503
    code = "gpu_out_of_memory"


class UploadTooSlow(ServiceError):
    status_code = 408
    code = "upload_too_slow"


class Cancelled(ServiceError):
    """The request's work was stopped: its client left, or the server is shutting down."""

    status_code = 503
    code = "cancelled"


class Draining(ServiceError):
    status_code = 503
    code = "shutting_down"


class ModelNotFound(ServiceError):
    status_code = 404
    code = "model_not_found"


class Unsupported(ServiceError):
    """A parameter this service understands but does not offer (OpenAI's ``stream``)."""

    code = "unsupported_parameter"


class JobNotFound(ServiceError):
    status_code = 404
    code = "job_not_found"


class Conflict(ServiceError):
    """The request contradicts the resource's state (a finished job, a reused Idempotency-Key)."""

    status_code = 409
    code = "conflict"


class StorageFull(ServiceError):
    status_code = 507
    code = "insufficient_storage"
