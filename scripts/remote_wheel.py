"""Read a wheel on the package index without downloading it: its file list from the zip's
central directory, and single members, both through HTTP range requests.

Used by check_platform_deps.py to tell a CUDA build of torch or CTranslate2 from a CPU-only
one for a platform this machine is not (linux/arm64 from an x86-64 CI box).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import httpx
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

INDEX = "https://pypi.org/simple"
# One client: kept-alive connections to the index and its file host, connect errors retried.
_HTTP = httpx.Client(timeout=60, transport=httpx.HTTPTransport(retries=3), follow_redirects=True)
_TAIL = 1 << 16  # the end-of-central-directory records sit in the last 64 KiB


@dataclass(frozen=True)
class Member:
    name: str
    method: int
    compressed_size: int
    size: int
    header_offset: int


def linux_tags(arch: str, python: tuple[int, int]) -> list[Tag]:
    """The wheel tags pip/uv accept on a glibc 2.28+ Linux of this architecture, best first."""
    platforms = [f"manylinux_2_{minor}_{arch}" for minor in range(39, 4, -1)]
    platforms += [f"manylinux{year}_{arch}" for year in (2014, 2010, 1)] + [f"linux_{arch}"]
    return [*cpython_tags(python, platforms=platforms), *compatible_tags(python, platforms=platforms)]


def wheel_url(name: str, version: str, tags: Iterable[Tag]) -> tuple[str, str]:
    """(filename, URL) of the wheel the installer would pick for these tags."""
    response = _HTTP.get(
        f"{INDEX}/{canonicalize_name(name)}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    response.raise_for_status()
    files = response.json()["files"]
    candidates: dict[Tag, tuple[str, str]] = {}
    for entry in files:
        filename = entry["filename"]
        if not filename.endswith(".whl"):
            continue
        try:
            _, wheel_version, _, wheel_tags = parse_wheel_filename(filename)
        except InvalidWheelFilename:  # ancient uploads with names no installer accepts
            continue
        if str(wheel_version) != version:
            continue
        for tag in wheel_tags:
            candidates.setdefault(tag, (filename, entry["url"]))
    for tag in tags:
        if tag in candidates:
            return candidates[tag]
    raise LookupError(f"no wheel of {name}=={version} for {next(iter(tags), None)} on the index")


class RemoteWheel:
    def __init__(self, url: str) -> None:
        self.url = url
        self.members = self._central_directory()

    def _get(self, start: int, end: int | None = None) -> bytes:
        span = f"bytes={start}-{'' if end is None else end}" if start >= 0 else f"bytes={start}"
        response = _HTTP.get(self.url, headers={"Range": span})
        if response.status_code != 206:
            raise OSError(f"{self.url}: HTTP {response.status_code} to a range request")
        return response.content

    def _central_directory(self) -> dict[str, Member]:
        tail = self._get(-_TAIL)
        eocd = tail.rfind(b"PK\x05\x06")
        if eocd < 0:
            raise ValueError(f"{self.url}: not a zip file")
        count, cd_size, cd_offset = struct.unpack_from("<HII", tail, eocd + 10)
        locator = tail.rfind(b"PK\x06\x07")
        if locator >= 0:  # ZIP64: torch's wheels are over 4 GiB unpacked
            (zip64_eocd,) = struct.unpack_from("<Q", tail, locator + 8)
            record = self._get(zip64_eocd, zip64_eocd + 55)
            count, cd_size, cd_offset = struct.unpack_from("<QQQ", record, 32)
        directory = self._get(cd_offset, cd_offset + cd_size - 1)
        members: dict[str, Member] = {}
        position = 0
        for _ in range(count):
            (method, compressed, size, name_len, extra_len, comment_len, offset) = struct.unpack_from(
                "<H8xII HHH8xI", directory, position + 10
            )
            name = directory[position + 46 : position + 46 + name_len].decode()
            extra = directory[position + 46 + name_len : position + 46 + name_len + extra_len]
            compressed, size, offset = _zip64_sizes(extra, compressed, size, offset)
            members[name] = Member(name, method, compressed, size, offset)
            position += 46 + name_len + extra_len + comment_len
        return members

    def read(self, name: str) -> bytes:
        member = self.members[name]
        header = self._get(member.header_offset, member.header_offset + 29)
        name_len, extra_len = struct.unpack_from("<HH", header, 26)
        start = member.header_offset + 30 + name_len + extra_len
        data = self._get(start, start + member.compressed_size - 1)
        if member.method == 0:
            return data
        if member.method == 8:
            return zlib.decompress(data, -15)
        raise ValueError(f"{name}: zip method {member.method} not supported")


def _zip64_sizes(extra: bytes, compressed: int, size: int, offset: int) -> tuple[int, int, int]:
    position = 0
    while position + 4 <= len(extra):
        header_id, length = struct.unpack_from("<HH", extra, position)
        if header_id == 0x0001:
            values = iter(struct.unpack_from(f"<{length // 8}Q", extra, position + 4))
            if size == 0xFFFFFFFF:
                size = next(values)
            if compressed == 0xFFFFFFFF:
                compressed = next(values)
            if offset == 0xFFFFFFFF:
                offset = next(values)
        position += 4 + length
    return compressed, size, offset
