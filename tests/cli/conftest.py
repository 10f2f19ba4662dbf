"""Fixtures of the CLI tests: a control plane on loopback, and `cli(*args)` running
`deckhand` against it as admin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.cli.helpers import ADMIN
from typer.testing import CliRunner

from deckhand.cli.app import build_app
from deckhand.server.testing import ThreadedServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ThreadedServer]:
    with ThreadedServer.on(tmp_path / "data", ADMIN) as running:
        yield running


@pytest.fixture
def cli(server: ThreadedServer, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DECKHAND_URL", server.url)
    monkeypatch.setenv("DECKHAND_TOKEN", ADMIN)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    app = build_app()

    def run(*args: str, ok: bool = True):  # type: ignore[no-untyped-def]
        result = runner.invoke(app, list(args), catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, (args, result.output, result.stderr)
        return result

    return run
