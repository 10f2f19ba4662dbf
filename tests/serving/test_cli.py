"""`deckhand package ...` and `deckhand serve` as a user runs them (real process, real port)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import typer
from typer.testing import CliRunner

from deckhand.cli import package_commands
from deckhand.packages.demo import sample_rows
from deckhand.testing import GiveUp, free_port, wait_until

SERVE = [sys.executable, "-c", "from deckhand.cli.serve_commands import main; main()"]


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """test root"""

    app.add_typer(package_commands.app)
    return app


def test_package_demo_build_and_inspect(tmp_path: Path) -> None:
    runner = CliRunner()
    demo = tmp_path / "demo.dhpkg"
    result = runner.invoke(_app(), ["package", "demo", "-o", str(demo)])
    assert result.exit_code == 0, result.output
    shown = runner.invoke(_app(), ["package", "inspect", str(demo), "--output", "json"])
    assert shown.exit_code == 0
    assert json.loads(shown.output)["class_labels"] == ["setosa", "versicolor", "virginica"]
    table = runner.invoke(_app(), ["package", "inspect", str(demo)])
    assert "multiclass" in table.output and "150 rows" in table.output

    broken = tmp_path / "broken.dhpkg"
    broken.write_bytes(demo.read_bytes()[:100])
    failed = runner.invoke(_app(), ["package", "inspect", str(broken)])
    assert failed.exit_code == 1 and "truncated" in failed.output

    (tmp_path / "hook.py").write_text("def score(data, model):\n    return data.sum(axis=1)\n")
    built = runner.invoke(
        _app(),
        [
            "package",
            "build",
            str(tmp_path / "hook.py"),
            "--format",
            "python",
            "--target-type",
            "regression",
            "-o",
            str(tmp_path / "hook.dhpkg"),
        ],
    )
    assert built.exit_code == 0, built.output
    assert "python, regression" in built.output


def test_serve_command_end_to_end(demo_package: Path) -> None:
    package = demo_package
    port = free_port()
    proc = subprocess.Popen(
        [*SERVE, "--package", str(package), "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(os.environ, DECKHAND_MONITORING="off"),
        start_new_session=True,
    )
    try:

        def answering() -> bool:
            if proc.poll() is not None:
                raise GiveUp(f"deckhand serve exited:\n{proc.stdout.read().decode()}")  # type: ignore[union-attr]
            return httpx.get(f"http://127.0.0.1:{port}/ping").status_code == 200

        wait_until(answering, 60, what="deckhand serve answering /ping")
        response = httpx.post(f"http://127.0.0.1:{port}/predictions", json=sample_rows(2))
        assert response.status_code == 200 and len(response.json()["data"]) == 2
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


def test_serve_refuses_bad_start(tmp_path: Path) -> None:
    unknown = subprocess.run(
        [*SERVE, "--package", str(tmp_path / "x.dhpkg"), "--monitoring", "carrier-pigeon"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unknown.returncode != 0
    assert "unknown channel 'carrier-pigeon'" in unknown.stderr  # checked before the package
    neither = subprocess.run(SERVE, capture_output=True, text=True, timeout=60)
    assert neither.returncode == 2 and "exactly one of --package" in neither.stderr
