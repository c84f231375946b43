"""Webhooks: where a job's completion may be announced, how it is signed, and how it is sent.

- **Where** (``WebhookPolicy``): only ``http(s)`` URLs whose host the operator allowed
  (``WEBHOOK_ALLOWED_HOSTS``, ``*.example.com`` allows subdomains), and never to loopback,
  private, link-local, multicast or reserved addresses unless ``WEBHOOK_ALLOW_PRIVATE``:
  a job submitter must not make the server call its own network (SSRF). The name is
  resolved at send time and the connection goes to the address that was checked, so a DNS
  answer that changes between the check and the connection cannot slip through; redirects
  are not followed.
- **Signed**: ``Webhook-Signature: v1=<hex>``, an HMAC-SHA256 with ``WEBHOOK_SECRET`` over
  ``"<Webhook-Timestamp>.<body>"``. Receivers recompute it and refuse old timestamps
  (``verify``), so a captured delivery cannot be replayed later.
- **Retried** with exponential backoff (by ``JobRunner``), up to ``WEBHOOK_MAX_ATTEMPTS``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from app.config import Settings

SIGNATURE_HEADER = "Webhook-Signature"
TIMESTAMP_HEADER = "Webhook-Timestamp"
ID_HEADER = "Webhook-Id"
DEFAULT_TOLERANCE_S = 300.0


class WebhookRefused(ValueError):
    """The callback URL may not be called (scheme, host or address not allowed)."""


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def verify(
    secret: bytes, body: bytes, signature: str, timestamp: str, *, tolerance_s: float = DEFAULT_TOLERANCE_S
) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs(time.time() - sent) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, sent, body), signature)


@dataclass(frozen=True)
class WebhookPolicy:
    allowed_hosts: tuple[str, ...]
    allow_private: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookPolicy:
        return cls(settings.webhook_allowed_host_list(), settings.webhook_allow_private)

    def check_url(self, url: str) -> str:
        """The URL's host if a job may name this URL (at submission); else WebhookRefused."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise WebhookRefused("callback_url must be an http:// or https:// URL.")
        host = (parts.hostname or "").lower().rstrip(".")
        if not host:
            raise WebhookRefused("callback_url has no host.")
        if parts.username or parts.password:
            raise WebhookRefused("callback_url must not carry credentials.")
        if not self.allowed_hosts:
            raise WebhookRefused("This server sends no webhooks: WEBHOOK_ALLOWED_HOSTS is empty.")
        if not any(_host_matches(host, pattern) for pattern in self.allowed_hosts):
            raise WebhookRefused(f"callback_url's host {host!r} is not in WEBHOOK_ALLOWED_HOSTS.")
        try:
            _ = parts.port
        except ValueError:
            raise WebhookRefused("callback_url has an invalid port.") from None
        if _is_ip(host):
            self.check_address(host)
        return host

    def check_destination(self, url: str) -> None:
        """``check_url``, and every address the host resolves to now (at submission: a callback
        that could never be sent is refused then, not accepted and failed at delivery)."""
        host = self.check_url(url)
        parts = urlsplit(url)
        self.resolve(host, parts.port or (443 if parts.scheme == "https" else 80))

    def check_address(self, address: str) -> None:
        ip = ipaddress.ip_address(address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if self.allow_private:
            return
        if not ip.is_global or ip.is_multicast:
            raise WebhookRefused(
                f"callback_url resolves to {ip}, a loopback, private, link-local or reserved address "
                "(WEBHOOK_ALLOW_PRIVATE is off)."
            )

    def resolve(self, host: str, port: int) -> str:
        """The address to connect to: every address the name has must be allowed."""
        if _is_ip(host):
            self.check_address(host)
            return host
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise WebhookRefused(f"callback_url's host {host!r} does not resolve: {exc}") from None
        addresses = [str(info[4][0]) for info in infos]
        for address in addresses:
            self.check_address(address)
        return addresses[0]


def _host_matches(host: str, pattern: str) -> bool:
    pattern = pattern.lower().rstrip(".")
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Delivery:
    delivered: bool
    error: str | None = None
    permanent: bool = False  # retrying cannot help (refused by the policy)


def send(url: str, body: bytes, *, job_id: str, secret: bytes, policy: WebhookPolicy, timeout_s: float) -> Delivery:
    """POST ``body`` to ``url`` once, pinned to the checked address; a 2xx answer delivers."""
    parts = urlsplit(url)
    try:
        host = policy.check_url(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = policy.resolve(host, port)
    except WebhookRefused as exc:
        return Delivery(False, str(exc), permanent=True)
    literal = f"[{address}]" if ":" in address else address
    pinned = parts._replace(netloc=f"{literal}:{port}").geturl()
    timestamp = int(time.time())
    headers = {
        "Host": parts.netloc.rsplit("@", 1)[-1],
        "Content-Type": "application/json",
        "User-Agent": "transcription-service-webhook",
        ID_HEADER: job_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }
    try:
        with httpx.Client(timeout=timeout_s, follow_redirects=False, trust_env=False) as client:
            answer = client.post(pinned, content=body, headers=headers, extensions={"sni_hostname": host})
    except httpx.HTTPError as exc:
        return Delivery(False, f"{type(exc).__name__}: {exc}")
    if 200 <= answer.status_code < 300:
        return Delivery(True)
    return Delivery(False, f"the receiver answered {answer.status_code}")


def backoff_s(attempt: int, *, base_s: float = 2.0, cap_s: float = 600.0) -> float:
    """Seconds before attempt ``attempt + 1``: 2, 4, 8, … up to ten minutes."""
    return min(base_s * 2 ** (attempt - 1), cap_s)
