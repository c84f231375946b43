"""Webhooks: the SSRF rules, the signature a receiver checks, and a real delivery over loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from app.jobs.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookPolicy,
    WebhookRefused,
    backoff_s,
    send,
    sign,
    verify,
)
from tests.support.webhook_receiver import Receiver, webhook_receiver

SECRET = b"s3cret-webhook-key"


def test_a_receiver_accepts_a_fresh_signature_and_refuses_tampering_and_replays() -> None:
    now = int(time.time())
    body = b'{"id": "j1", "state": "succeeded"}'
    signature = sign(SECRET, now, body)
    assert verify(SECRET, body, signature, str(now))
    assert not verify(SECRET, body + b" ", signature, str(now)), "a changed body"
    assert not verify(b"other-key", body, signature, str(now)), "another secret"
    old = now - 3600
    assert not verify(SECRET, body, sign(SECRET, old, body), str(old)), "a replay an hour later"
    assert not verify(SECRET, body, signature, "yesterday")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example.com/x",
        "file:///etc/passwd",
        "https://evil.example.org/x",
        "https://hooks.example.com.evil.org/x",
        "https://user:pw@hooks.example.com/x",
        "http://127.0.0.1/x",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.5/x",
        "http://[::1]/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://0.0.0.0/x",
        "https://hooks.example.com:99999/x",
    ],
)
def test_callbacks_outside_the_allowed_public_hosts_are_refused(url: str) -> None:
    policy = WebhookPolicy(("hooks.example.com", "*.corp.example", "127.0.0.1", "10.0.0.5", "169.254.169.254",
                            "::1", "::ffff:127.0.0.1", "0.0.0.0"))  # fmt: skip
    with pytest.raises(WebhookRefused):
        policy.check_url(url)


def test_allowed_hosts_and_subdomains_pass() -> None:
    policy = WebhookPolicy(("hooks.example.com", "*.corp.example"))
    assert policy.check_url("https://hooks.example.com/done") == "hooks.example.com"
    assert policy.check_url("https://a.b.corp.example:8443/x") == "a.b.corp.example"
    with pytest.raises(WebhookRefused, match="WEBHOOK_ALLOWED_HOSTS is empty"):
        WebhookPolicy(()).check_url("https://hooks.example.com/done")


def test_a_name_that_resolves_to_a_private_address_is_refused_at_send_time() -> None:
    policy = WebhookPolicy(("localhost",))
    with pytest.raises(WebhookRefused, match="loopback, private"):
        policy.resolve("localhost", 80)
    assert WebhookPolicy(("localhost",), allow_private=True).resolve("localhost", 80) in ("127.0.0.1", "::1")


@pytest.fixture
def receiver() -> Iterator[tuple[str, Receiver]]:
    with webhook_receiver() as receiver:
        yield f"http://localhost:{receiver.port}/hook", receiver


def test_a_delivery_reaches_the_receiver_signed(receiver: tuple[str, Receiver]) -> None:
    url, handler = receiver
    body = b'{"id": "j1"}'
    policy = WebhookPolicy(("localhost",), allow_private=True)
    delivery = send(url, body, job_id="j1", secret=SECRET, policy=policy, timeout_s=5)
    assert delivery.delivered, delivery.error
    headers, received = handler.received[0]
    assert received == body
    assert headers["Host"].startswith("localhost:"), "the receiver sees its own name, not the pinned address"
    assert verify(SECRET, received, headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER])


def test_private_receivers_are_not_called_unless_allowed(receiver: tuple[str, Receiver]) -> None:
    url, handler = receiver
    delivery = send(url, b"{}", job_id="j1", secret=SECRET, policy=WebhookPolicy(("localhost",)), timeout_s=5)
    assert not delivery.delivered and delivery.permanent
    assert handler.received == []


def test_redirects_are_not_followed(receiver: tuple[str, Receiver]) -> None:
    url, handler = receiver
    handler.status = 302
    policy = WebhookPolicy(("localhost",), allow_private=True)
    delivery = send(url, b"{}", job_id="j1", secret=SECRET, policy=policy, timeout_s=5)
    assert not delivery.delivered and not delivery.permanent and "302" in (delivery.error or "")
    assert len(handler.received) == 1


def test_backoff_doubles_up_to_a_cap() -> None:
    assert [backoff_s(n) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]
    assert backoff_s(30) == 600.0
