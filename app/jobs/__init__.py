"""Durable transcription jobs: a queue and result store (SQLite embedded, or Postgres), the
uploads they keep, the workers that run them, and the webhooks that announce them."""
