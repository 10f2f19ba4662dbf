"""Helpers for driving plugins through the runner CLI as a subprocess."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass
class RunResult:
    returncode: int
    stdout: str
    stderr: str
    status: dict[str, Any] | None


def write_yaml(path: Path, values: Any) -> Path:
    path.write_text(yaml.safe_dump(values))
    return path


def action_args(plugin: str, action: str, config: Path, private_config: Path) -> list[str]:
    """The runner's arguments for one action of a plugin with its config files."""
    return ["--plugin", plugin, "--action", action, "--config", str(config), "--private-config", str(private_config)]


def run_runner(
    *args: str,
    status_file: Path | None = None,
    cwd: Path | None = None,
    env: dict | None = None,
    entry: str = "bosun",
) -> RunResult:
    """Run `bosun-plugin-runner` (or `deckhand plugin run`) in a fresh interpreter."""
    if entry == "bosun":
        cmd = [sys.executable, "-m", "deckhand.plugin.runner", *args]
    else:
        cmd = [
            sys.executable,
            "-c",
            "import sys; from deckhand.cli import main; sys.exit(main())",
            "plugin",
            "run",
            *args,
        ]
    if status_file is not None:
        cmd += ["--status-file", str(status_file)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=60)
    status = yaml.safe_load(status_file.read_text()) if status_file and status_file.exists() else None
    return RunResult(proc.returncode, proc.stdout, proc.stderr, status)


def filesystem_config(base: Path, **extra: Any) -> dict[str, Any]:
    """Every key the filesystem plugin requires (the documented example values), based at `base`."""
    from deckhand.plugins.filesystem import config

    return {**config.EXAMPLE, config.BASE_DIR: str(base), config.ENABLE_MONITORING: False, **extra}
