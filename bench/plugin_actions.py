"""Median time of one plugin action: through the runner as a subprocess (what the agent's
`command` path pays per action) and in-process (the agent's built-in path).

    python bench/plugin_actions.py [--runs 21]

Prints one table with wall time and CPU time (user + system of the child; on a busy
machine wall time includes waiting for a core, CPU time does not). Measured in the same
run for comparison:
- the interpreter floor, `python -c pass`, which includes this machine's site start-up
  (.pth files, which may import packages on every start);
- the same without site (`python -S`), and the runner started that way with
  site-packages on PYTHONPATH: what the runner itself costs on an interpreter whose
  site start-up is lean.
Action configs are JSON, as the agent writes them (JSON is YAML); one row uses a
hand-written YAML config, which makes the runner import PyYAML.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import site
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from deckhand.plugin import DeploymentInfo
from deckhand.plugins.filesystem.plugin import FilesystemPlugin
from deckhand.plugins.test.plugin import TestPlugin

SRC = Path(__file__).resolve().parents[1] / "src"
# The console script pip installed (what a `command:` prefix runs), not `-m`, whose runpy
# start-up would add its own imports.
RUNNER_SCRIPT = shutil.which("bosun-plugin-runner", path=str(Path(sys.executable).parent)) or "bosun-plugin-runner"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_command(
    cmd: list[str], runs: int, before: Callable[[], None] | None = None, env: dict[str, str] | None = None
) -> tuple[float, float]:
    """Median wall and CPU milliseconds of running `cmd` to completion."""
    subprocess.run(cmd, check=True, capture_output=True, env=env)  # warm-up (page cache)
    walls, cpus = [], []
    for _ in range(runs):
        if before:
            before()
        cpu0, start = _children_cpu(), time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        walls.append(time.perf_counter() - start)
        cpus.append(_children_cpu() - cpu0)
    return statistics.median(walls) * 1000, statistics.median(cpus) * 1000


def time_call(fn: Callable[[], object], runs: int, before: Callable[[], None] | None = None) -> tuple[float, float]:
    fn()
    walls, cpus = [], []
    for _ in range(runs):
        if before:
            before()
        cpu0, start = time.process_time(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu0)
    return statistics.median(walls) * 1000, statistics.median(cpus) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="deckhand-bench-"))
    try:
        rows = run(work, args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    width = max(len(r[1]) for r in rows)
    print(f"{'path':<26} {'action':<{width}} {'wall ms':>9} {'cpu ms':>9}")
    print(f"{'-' * 26} {'-' * width} {'-' * 9} {'-' * 9}")
    for path, action, (wall, cpu) in rows:
        print(f"{path:<26} {action:<{width}} {wall:>9.2f} {cpu:>9.2f}")
    print(
        f"\nmedians of {args.runs} runs per subprocess row, 200 per in-process status row; "
        f"python {sys.version.split()[0]}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )


def run(work: Path, runs: int) -> list[tuple[str, str, tuple[float, float]]]:
    base = work / "base"
    base.mkdir()
    artifacts = {}
    for label, size in (("1 MB", 1 << 20), ("100 MB", 100 << 20)):
        path = work / f"model-{size}.dhpkg"
        path.write_bytes(os.urandom(size))
        artifacts[label] = path

    def config(name: str, values: dict, as_yaml: bool = False) -> str:
        path = work / name
        path.write_text(yaml.safe_dump(values) if as_yaml else json.dumps(values))
        return str(path)

    status = str(work / "status.yaml")
    test_plugin_config = {"pluginConfig": {"tmp_dir": str(work)}}
    start_cfg = config("start.json", test_plugin_config)
    start_yaml = config("start.yaml", test_plugin_config, as_yaml=True)
    status_cfg = config("status.json", {**test_plugin_config, "deploymentInfo": {"id": "d1", "modelId": "m1"}})

    def runner(plugin: str, action: str, cfg: str, *python_flags: str) -> list[str]:
        return [
            sys.executable,
            *python_flags,
            RUNNER_SCRIPT,
            *("--plugin", plugin, "--action", action, "--config", cfg, "--status-file", status),
        ]

    # -S skips site (and its .pth hooks); PYTHONPATH then supplies what site would have added.
    lean_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), *site.getsitepackages()])}
    rows: list[tuple[str, str, tuple[float, float]]] = [
        ("interpreter floor", "python -c pass", time_command([sys.executable, "-c", "pass"], runs)),
        ("interpreter floor, no site", "python -S -c pass", time_command([sys.executable, "-S", "-c", "pass"], runs)),
        ("subprocess runner", "test plugin_start", time_command(runner("test", "plugin_start", start_cfg), runs)),
        (
            "subprocess runner",
            "test plugin_start, YAML config",
            time_command(runner("test", "plugin_start", start_yaml), runs),
        ),
        (
            "subprocess runner",
            "test deployment_status",
            time_command(runner("test", "deployment_status", status_cfg), runs),
        ),
        (
            "subprocess runner, no site",
            "test plugin_start",
            time_command(runner("test", "plugin_start", start_cfg, "-S"), runs, env=lean_env),
        ),
    ]

    def clean() -> None:
        for entry in base.iterdir():
            shutil.rmtree(entry)

    for label, artifact in artifacts.items():
        cfg = config(
            f"fs-{label.replace(' ', '')}.json",
            {
                "pluginConfig": {"baseDir": str(base)},
                "deploymentInfo": {"id": "d1", "modelId": "m1", "modelArtifact": str(artifact)},
            },
        )
        rows.append(
            (
                "subprocess runner",
                f"filesystem deployment_start {label}",
                time_command(runner("filesystem", "deployment_start", cfg), runs, before=clean),
            )
        )

    test_plugin = TestPlugin({"tmp_dir": str(work)}, None, None)
    di = DeploymentInfo({"id": "d1", "modelId": "m1", "modelArtifact": str(artifacts["1 MB"])})
    rows.append(("in-process", "test plugin_start", time_call(lambda: test_plugin.invoke("plugin_start"), 200)))
    rows.append(
        ("in-process", "test deployment_status", time_call(lambda: test_plugin.invoke("deployment_status", di), 200))
    )
    fs_plugin = FilesystemPlugin({"baseDir": str(base)}, None, None)
    for label, artifact in artifacts.items():
        info = DeploymentInfo({"id": "d1", "modelId": "m1", "modelArtifact": str(artifact)})
        rows.append(
            (
                "in-process",
                f"filesystem deployment_start {label}",
                time_call(lambda info=info: fs_plugin.invoke("deployment_start", info), runs, before=clean),
            )
        )
    rows.append(
        (
            "in-process",
            "filesystem deployment_status",
            time_call(lambda: fs_plugin.invoke("deployment_status", di), 200),
        )
    )
    return rows


if __name__ == "__main__":
    main()
