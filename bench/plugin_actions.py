"""Median wall time of one plugin action: through the runner as a subprocess (what the
agent's `command` path pays per action) and in-process (the agent's built-in path).

    python bench/plugin_actions.py [--runs 15]

Prints one table. The interpreter floor (`python -c pass`, which includes this machine's
site-packages start-up) is measured in the same run for comparison.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from deckhand.plugin import DeploymentInfo
from deckhand.plugins.filesystem.plugin import FilesystemPlugin
from deckhand.plugins.test.plugin import TestPlugin


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def time_command(cmd: list[str], runs: int, before=None) -> list[float]:
    samples = []
    subprocess.run(cmd, check=True, capture_output=True)  # warm-up (page cache)
    for _ in range(runs):
        if before:
            before()
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        samples.append(time.perf_counter() - start)
    return samples


def time_call(fn, runs: int, before=None) -> list[float]:
    fn()
    samples = []
    for _ in range(runs):
        if before:
            before()
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="deckhand-bench-"))
    base = work / "base"
    base.mkdir()
    artifacts = {}
    for label, size in (("1 MB", 1 << 20), ("100 MB", 100 << 20)):
        path = work / f"model-{size}.dhpkg"
        path.write_bytes(os.urandom(size))
        artifacts[label] = path

    runner = [sys.executable, "-m", "deckhand.plugin.runner"]
    test_cfg = work / "test.yaml"
    test_cfg.write_text(yaml.safe_dump({"pluginConfig": {"tmp_dir": str(work)}}))
    status = str(work / "status.yaml")
    rows: list[tuple[str, str, float]] = []

    rows.append(
        ("interpreter floor", "python -c pass", median_ms(time_command([sys.executable, "-c", "pass"], args.runs)))
    )
    rows.append(
        (
            "subprocess runner",
            "test plugin_start (0 s sleeps)",
            median_ms(
                time_command(
                    [
                        *runner,
                        "--plugin",
                        "test",
                        "--action",
                        "plugin_start",
                        "--config",
                        str(test_cfg),
                        "--status-file",
                        status,
                    ],
                    args.runs,
                )
            ),
        )
    )
    rows.append(
        (
            "subprocess runner",
            "test deployment_status",
            median_ms(
                time_command(
                    [
                        *runner,
                        "--plugin",
                        "test",
                        "--action",
                        "deployment_status",
                        "--config",
                        str(_deploy_cfg(work, "status")),
                        "--status-file",
                        status,
                    ],
                    args.runs,
                )
            ),
        )
    )

    def clean():
        for entry in base.iterdir():
            import shutil

            shutil.rmtree(entry)

    for label, artifact in artifacts.items():
        cfg = work / f"fs-{label.replace(' ', '')}.yaml"
        cfg.write_text(
            yaml.safe_dump(
                {
                    "pluginConfig": {"baseDir": str(base)},
                    "deploymentInfo": {"id": "d1", "modelId": "m1", "modelArtifact": str(artifact)},
                }
            )
        )
        rows.append(
            (
                "subprocess runner",
                f"filesystem deployment_start {label}",
                median_ms(
                    time_command(
                        [
                            *runner,
                            "--plugin",
                            "filesystem",
                            "--action",
                            "deployment_start",
                            "--config",
                            str(cfg),
                            "--status-file",
                            status,
                        ],
                        args.runs,
                        before=clean,
                    )
                ),
            )
        )

    test_plugin = TestPlugin({"tmp_dir": str(work)}, None, None)
    di = DeploymentInfo({"id": "d1", "modelId": "m1", "modelArtifact": str(artifacts["1 MB"])})
    rows.append(
        ("in-process", "test plugin_start", median_ms(time_call(lambda: test_plugin.invoke("plugin_start"), 200)))
    )
    rows.append(
        (
            "in-process",
            "test deployment_status",
            median_ms(time_call(lambda: test_plugin.invoke("deployment_status", di), 200)),
        )
    )
    fs_plugin = FilesystemPlugin({"baseDir": str(base)}, None, None)
    for label, artifact in artifacts.items():
        info = DeploymentInfo({"id": "d1", "modelId": "m1", "modelArtifact": str(artifact)})
        rows.append(
            (
                "in-process",
                f"filesystem deployment_start {label}",
                median_ms(
                    time_call(lambda info=info: fs_plugin.invoke("deployment_start", info), args.runs, before=clean)
                ),
            )
        )
    fs_status = median_ms(time_call(lambda: fs_plugin.invoke("deployment_status", di), 200))
    rows.append(("in-process", "filesystem deployment_status", fs_status))

    width = max(len(r[1]) for r in rows)
    print(f"{'path':<18} {'action':<{width}} {'median ms':>10}")
    print(f"{'-' * 18} {'-' * width} {'-' * 10}")
    for path, action, ms in rows:
        print(f"{path:<18} {action:<{width}} {ms:>10.2f}")
    print(f"\n{args.runs} runs per subprocess row, 200 per in-process status row; python {sys.version.split()[0]}")


def _deploy_cfg(work: Path, name: str) -> Path:
    path = work / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump({"pluginConfig": {"tmp_dir": str(work)}, "deploymentInfo": {"id": "d1", "modelId": "m1"}})
    )
    return path


if __name__ == "__main__":
    main()
