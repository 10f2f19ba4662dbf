"""What several benches share: a throw-away PostgreSQL and a percentile. Benches run as
scripts (`python bench/NAME.py`), so bench/ is on sys.path and they `from _common import ...`."""

from __future__ import annotations

import glob
import shutil
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def percentile(samples: list[float], q: float) -> float:
    """The sample at rank q (0..1) of the sorted samples, nearest rank."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def start_postgres(stack: ExitStack, cluster_out: list[object] | None = None) -> tuple[str | None, str | None]:
    """A fresh database on a throw-away cluster (tests/postgres_fixtures.py's PostgresCluster:
    the code the tests start PostgreSQL with), stopped when `stack` closes; or why not.
    `cluster_out`, if given, gets the cluster appended (its data dir holds postmaster.pid)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return None, "psycopg is not installed (pip install 'deckhand[postgres]')"
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        return None, "PostgreSQL is not installed (scripts/setup/10-system-packages.sh, Debian package `postgresql`)"
    sys.path.insert(0, str(ROOT))
    try:
        from tests.postgres_fixtures import PostgresCluster
    except ImportError as exc:
        return None, f"cannot import tests/postgres_fixtures.py: {exc}"
    cluster = PostgresCluster()
    try:
        cluster.start()
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        shutil.rmtree(cluster.base, ignore_errors=True)
        return None, f"the cluster did not start: {exc} {detail.strip()[-300:]}".strip()
    stack.callback(cluster.stop)
    if cluster_out is not None:
        cluster_out.append(cluster)
    try:
        return cluster.create_database(), None
    except Exception as exc:  # noqa: BLE001 - reported by the caller
        return None, f"cannot create a database: {exc}"
