"""Log lines keep no secret: query parameters and headers named like credentials are redacted
in uvicorn's records (the e2e test reads a real server's log; these pin the rules)."""

from __future__ import annotations

import logging

import pytest

from app.http.access_log import HealthProbes, RedactSecrets, redact_header, redact_query, route_of


@pytest.mark.parametrize(
    ("target", "logged"),
    [
        ("/v1/realtime?intent=transcription&api_key=sk-123", "/v1/realtime?intent=transcription&api_key=[redacted]"),
        (
            "/x?access_token=a&apiKey=b&X-Amz-Signature=c&password=d",
            "/x?access_token=[redacted]&apiKey=[redacted]&X-Amz-Signature=[redacted]&password=[redacted]",
        ),
        ("/x?api%5Fkey=s", "/x?api%5Fkey=[redacted]"),  # the name as decoded decides
        ("/x?format=srt&page=2", "/x?format=srt&page=2"),
        ("/x?key", "/x?key"),  # no value, nothing to hide
        ("/transcribe", "/transcribe"),
    ],
)
def test_secret_named_query_parameters_are_redacted(target, logged):
    assert redact_query(target) == logged


def test_credential_headers_are_redacted_and_plain_subprotocols_kept():
    assert redact_header("Authorization", "Bearer sk-123") == "[redacted]"
    assert redact_header("cookie", "session=abc") == "[redacted]"
    assert redact_header("x-api-key", "sk") == "[redacted]"
    assert redact_header("user-agent", "curl/8") == "curl/8"
    protocols = redact_header("Sec-WebSocket-Protocol", "realtime, openai-insecure-api-key.sk-123")
    assert protocols == "realtime, openai-insecure-api-key.[redacted]"


def _record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, msg, args, None)


def test_the_filter_rewrites_uvicorns_records_as_they_are_formatted():
    websocket = _record('%s - "WebSocket %s" [accepted]', "127.0.0.1:5", "/v1/realtime?api_key=sk-123")
    access = _record('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", "/v1/jobs?token=t", "1.1", 200)
    header = _record("< %s: %s", "authorization", "Bearer sk-123")
    for record in (websocket, access, header):
        assert RedactSecrets().filter(record)
    assert websocket.getMessage() == '127.0.0.1:5 - "WebSocket /v1/realtime?api_key=[redacted]" [accepted]'
    assert access.getMessage() == '127.0.0.1:5 - "GET /v1/jobs?token=[redacted] HTTP/1.1" 200'
    assert header.getMessage() == "< authorization: [redacted]"


def test_health_probes_stay_out_of_the_access_log():
    probe = _record('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", "/health?require=all", "1.1", 200)
    work = _record('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "POST", "/transcribe", "1.1", 200)
    assert not HealthProbes().filter(probe) and HealthProbes().filter(work)


def test_a_log_line_names_the_route_not_the_clients_path():
    class Route:
        path = "/v1/jobs/{job_id}"

    assert route_of({"route": Route(), "path": "/v1/jobs/x\nFORGED LOG LINE"}) == "/v1/jobs/{job_id}"
    assert route_of({"path": "/nothing\nhere"}) == "an unmatched path"
