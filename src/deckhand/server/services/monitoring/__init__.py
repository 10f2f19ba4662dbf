"""Monitoring on the control plane, over per-minute buckets in the database.

- `ingest`: a batch's records validated (`deckhand.server.schemas.monitoring`), raw
  records aggregated, sources claimed once, deployments checked, then merged;
- `storage`: the merge into the buckets (SQLite and PostgreSQL) and source retention;
- `models`: per model of a deployment (champion, canary, challengers): health and
  prediction PSI against another model;
- `queries`: service health, prediction distribution and drift over a window (the PSI
  itself is `deckhand.monitoring.drift`, pure).
"""
