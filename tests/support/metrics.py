"""/metrics read back as numbers, by sample name and labels."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families


def metric_samples(client: Any, **headers: str) -> dict:
    reply = client.get("/metrics", headers=headers)
    assert reply.status_code == 200, reply.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(reply.text)
        for s in family.samples
    }
