"""Multipart uploads read by the route itself: after admission, paced, bounded, on disk once.

FastAPI's form parsing reads and spools the whole body before a route runs, so a request
refused for capacity has already cost its upload, with no time limit. Routes that take
audio parse the body here instead, after ``AdmissionGate.admit``:
- the file part streams straight into one named temporary file (ffmpeg needs a seekable
  path), counted against the upload limit and the service's disk budget chunk by chunk;
- a body that stalls for ``stall_timeout_s`` or averages under ``min_rate`` is cut (408);
- the file is deleted on every way out, and its disk reservation returned.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect, Request

from app.control.budget import ByteBudget, Reservation
from app.engine.options import MAX_KNOWN_SPEAKERS
from app.engine.speakers.references import data_url
from app.errors import EmptyUpload, MissingFile, ServiceError, UploadTooLarge, UploadTooSlow

logger = logging.getLogger(__name__)

FILE_FIELD = "file"
_MAX_FIELDS = 100
_MAX_FIELD_BYTES = 64 * 1024
# Known speakers' reference clips come as long data-URL fields or as file parts (a 10 s clip).
REFERENCE_FIELDS = ("known_speaker_references", "known_speaker_references[]")
_MAX_REFERENCE_BYTES = 2 * 2**20


class BadUpload(ServiceError):
    code = "bad_request"


class UploadAbandoned(ServiceError):
    """The client closed the connection mid-upload: nobody will read the answer."""

    code = "client_disconnected"


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int
    max_mb: float  # as configured, for messages
    temp_dir: Path | None
    disk: ByteBudget
    min_rate_bytes_s: float
    stall_timeout_s: float


@dataclass
class Upload:
    path: Path
    filename: str | None
    size: int
    fields: dict[str, list[str]] = field(default_factory=dict)  # every value, in order, by field name


@asynccontextmanager
async def receive_upload(request: Request, limits: UploadLimits) -> AsyncIterator[Upload]:
    """Read the multipart body: the ``file`` part to disk, the other fields into ``fields``."""
    media_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if media_type != b"multipart/form-data" or not boundary:
        raise MissingFile(f"No file was uploaded: send it as multipart/form-data, in the field '{FILE_FIELD}'.")
    fd, name = tempfile.mkstemp(prefix="upload-", suffix=".bin", dir=limits.temp_dir)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as sink, limits.disk.reservation() as disk:
            parts = _Parts(sink, disk, limits)
            parser = MultipartParser(boundary, parts.callbacks())  # type: ignore[arg-type]
            try:
                async for chunk in _paced(request.stream(), limits):
                    parser.write(chunk)
                parser.finalize()
            except MultipartParseError as exc:
                raise BadUpload("The multipart body is malformed.") from exc
            except ClientDisconnect:
                logger.info("Client disconnected during its upload (%d bytes received)", parts.file_bytes)
                raise UploadAbandoned("The client disconnected during the upload.") from None
            parts.finish()
            sink.flush()
            yield Upload(path, parts.filename, parts.file_bytes, parts.fields)
    finally:
        path.unlink(missing_ok=True)


def parse_fields(model: type[BaseModel], fields: dict[str, list[str]]) -> Any:
    """Validate form fields into ``model``; errors become the app's 422 (as FastAPI's would).

    A field sent once is a value; a field sent several times, or named ``name[]`` (how the
    OpenAI SDKs send arrays), is a list under ``name``.
    """
    values: dict[str, Any] = {}
    for name, sent in fields.items():
        if name.endswith("[]"):
            values.setdefault(name[:-2], []).extend(sent)
        elif name not in values:
            values[name] = sent[0] if len(sent) == 1 else sent
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from exc


def multipart_openapi(model: type[BaseModel], description: str) -> dict[str, Any]:
    """The request body for OpenAPI: ``model``'s fields plus the required binary ``file``.

    A form field is text or absent: "unset" is leaving it out, so the fields' ``null``
    alternatives (pydantic's ``Optional``) are not part of the form's schema. The file is
    audio or video (``encoding``), which fuzzers and client generators can act on.
    """
    schema = model.model_json_schema()
    properties = {FILE_FIELD: {"type": "string", "format": "binary", "description": description}}
    properties.update({name: _without_null(field) for name, field in schema.get("properties", {}).items()})
    body = {"type": "object", "properties": properties, "required": [FILE_FIELD, *schema.get("required", [])]}
    content = {"schema": body, "encoding": {FILE_FIELD: {"contentType": "audio/*, video/*"}}}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": content}}}


def _without_null(field: dict[str, Any]) -> dict[str, Any]:
    alternatives = [choice for choice in field.get("anyOf", ()) if choice.get("type") != "null"]
    if "anyOf" not in field or len(alternatives) == len(field["anyOf"]):
        return field
    rest = {key: value for key, value in field.items() if key not in ("anyOf", "default")}
    if field.get("default") is not None:
        rest["default"] = field["default"]
    return {**alternatives[0], **rest} if len(alternatives) == 1 else {"anyOf": alternatives, **rest}


class _Parts:
    """python-multipart callbacks: which part we are in, and where its bytes go."""

    def __init__(self, sink: Any, disk: Reservation, limits: UploadLimits) -> None:
        self.sink, self.disk, self.limits = sink, disk, limits
        self.fields: dict[str, list[str]] = {}
        self._field_count = 0
        self.filename: str | None = None
        self.file_bytes = 0
        self._files = 0
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._is_file = False
        self._reference_type: str | None = None  # a reference clip sent as a file part: its media type
        self._references = 0
        self._value = bytearray()
        self._ended = False

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda data, start, end: self._header_field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._header_value.extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _end(self) -> None:
        self._ended = True

    def _part_begin(self) -> None:
        self._headers = {}
        self._value = bytearray()

    def _header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        disposition, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        if disposition != b"form-data" or b"name" not in params:
            raise BadUpload("Every multipart part needs a Content-Disposition: form-data header with a name.")
        self._name = params[b"name"].decode("utf-8", "replace")
        self._is_file = self._name == FILE_FIELD
        if self._is_file:
            self._files += 1
            if self._files > 1:
                raise BadUpload(f"Send one file per request: the field '{FILE_FIELD}' appears more than once.")
            filename = params.get(b"filename")
            self.filename = filename.decode("utf-8", "replace") if filename is not None else None
        else:
            self._field_count += 1
            if self._field_count > _MAX_FIELDS:
                raise BadUpload(f"Too many form fields (more than {_MAX_FIELDS}).")
            self._reference_type = None
            if self._name in REFERENCE_FIELDS:
                self._references += 1
                if self._references > MAX_KNOWN_SPEAKERS:  # each may be megabytes: bound them here
                    raise BadUpload(f"More than {MAX_KNOWN_SPEAKERS} known_speaker_references.")
                if b"filename" in params:
                    self._reference_type = self._headers.get(b"content-type", b"").decode("latin-1") or None

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        size = end - start
        if not self._is_file:
            limit = _MAX_REFERENCE_BYTES if self._name in REFERENCE_FIELDS else _MAX_FIELD_BYTES
            if len(self._value) + size > limit:
                raise BadUpload(f"The form field '{self._name}' is longer than {limit // 1024} KiB.")
            self._value.extend(data[start:end])
            return
        if self.file_bytes + size > self.limits.max_bytes:
            raise UploadTooLarge(f"The upload exceeds the limit of {self.limits.max_mb:g} MiB (MAX_UPLOAD_MB).")
        self.disk.grow(size)
        self.sink.write(data[start:end])
        self.file_bytes += size

    def _part_end(self) -> None:
        if self._is_file or self._name is None:
            return
        if self._name in REFERENCE_FIELDS and self._reference_type is not None:  # a clip as a file part
            value = data_url(bytes(self._value), self._reference_type)
        else:
            value = self._value.decode("utf-8", "replace")
        self.fields.setdefault(self._name, []).append(value)

    def finish(self) -> None:
        if not self._ended:
            raise BadUpload("The multipart body ended before its closing boundary.")
        if self._files == 0:
            raise MissingFile(f"No file was uploaded: send it as the multipart field '{FILE_FIELD}'.")
        if self.file_bytes == 0:
            raise EmptyUpload("The uploaded file is empty.")


async def _paced(stream: AsyncIterator[bytes], limits: UploadLimits) -> AsyncIterator[bytes]:
    """The body's chunks, cut off when the client stalls or trickles (slowloris)."""
    started = time.monotonic()
    received = 0
    chunks = stream.__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(chunks.__anext__(), limits.stall_timeout_s)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise UploadTooSlow(
                f"The upload sent nothing for {limits.stall_timeout_s:g} s (UPLOAD_STALL_TIMEOUT_S)."
            ) from None
        received += len(chunk)
        elapsed = time.monotonic() - started
        if (
            limits.min_rate_bytes_s
            and elapsed > limits.stall_timeout_s
            and received < limits.min_rate_bytes_s * elapsed
        ):
            raise UploadTooSlow(
                f"The upload is arriving at {received / elapsed / 1024:.1f} KiB/s, under the minimum of "
                f"{limits.min_rate_bytes_s / 1024:g} KiB/s (UPLOAD_MIN_RATE_KIB_S)."
            )
        yield chunk
