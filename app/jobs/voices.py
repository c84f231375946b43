"""The voice book: each tenant's stored reference clips, named, for known speakers by name alone.

A clip is stored as it will be used — a 16 kHz WAV data URL, the form of OpenAI's
``known_speaker_references`` — in the job store's database (its own table), so a request that
names a stored voice carries it on like any reference, jobs included. A tenant never sees
another's voices: every statement is scoped by the tenant id, as jobs are.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from app.engine.speakers.names import lookup_key
from app.jobs.store import JobStore

VOICES_TABLE = (
    "CREATE TABLE IF NOT EXISTS voices (tenant TEXT NOT NULL, name TEXT NOT NULL, clip TEXT NOT NULL, "
    "seconds {real} NOT NULL, created_at {real} NOT NULL, PRIMARY KEY (tenant, name))"
)
MAX_VOICES = 200  # per tenant


@dataclass(frozen=True)
class Voice:
    name: str
    seconds: float
    created_at: float


class VoiceBook:
    def __init__(self, store: JobStore) -> None:
        self._store = store
        store.run_sql(VOICES_TABLE)

    def put(self, tenant: str, name: str, clip: str, seconds: float) -> Voice | None:
        """Store (or replace) ``name``'s clip; None when the tenant's book is full."""
        count = self._store.run_sql("SELECT COUNT(*) AS n FROM voices WHERE tenant = :tenant", tenant=tenant)[0]["n"]
        if count >= MAX_VOICES and not self._row(tenant, name):
            return None
        now = time.time()
        self._store.run_sql(
            "INSERT INTO voices (tenant, name, clip, seconds, created_at) "
            "VALUES (:tenant, :name, :clip, :seconds, :now) "
            "ON CONFLICT (tenant, name) DO UPDATE SET clip = :clip, seconds = :seconds, created_at = :now",
            tenant=tenant,
            name=name,
            clip=clip,
            seconds=seconds,
            now=now,
        )
        return Voice(name, round(seconds, 2), now)

    def voices(self, tenant: str) -> list[Voice]:
        rows = self._store.run_sql(
            "SELECT name, seconds, created_at FROM voices WHERE tenant = :tenant ORDER BY name", tenant=tenant
        )
        return [Voice(row["name"], round(row["seconds"], 2), row["created_at"]) for row in rows]

    def voice(self, tenant: str, name: str) -> Voice | None:
        stored = self._stored_name(tenant, name)
        if stored is None:
            return None
        row = self._row(tenant, stored)[0]
        return Voice(stored, round(row["seconds"], 2), row["created_at"])

    def clips(self, tenant: str, names: list[str]) -> dict[str, str]:
        """The stored clips (data URLs) of those ``names`` the tenant has stored."""
        found = {}
        for name in names:
            rows = self._store.run_sql(
                "SELECT clip FROM voices WHERE tenant = :tenant AND name = :name", tenant=tenant, name=name
            )
            if rows:
                found[name] = rows[0]["clip"]
        return found

    def delete(self, tenant: str, name: str) -> bool:
        stored = self._stored_name(tenant, name)
        if stored is None:
            return False
        self._store.run_sql("DELETE FROM voices WHERE tenant = :tenant AND name = :name", tenant=tenant, name=stored)
        return True

    def _stored_name(self, tenant: str, name: str) -> str | None:
        """The stored name ``name`` addresses: as sent, else normalised as names are stored now
        (names stored before they were normalised are still found as they were sent)."""
        for candidate in dict.fromkeys((name, lookup_key(name))):
            if self._row(tenant, candidate):
                return candidate
        return None

    def _row(self, tenant: str, name: str) -> list[dict[str, Any]]:
        return self._store.run_sql(
            "SELECT seconds, created_at FROM voices WHERE tenant = :tenant AND name = :name", tenant=tenant, name=name
        )
