"""Median time of one plugin action through the runner as a subprocess (what the agent's
`command` path pays per action), deckhand's runner side by side with the reference runner
(datarobot-bosun, the runner the seeds document) in the same run, and in-process.

    python bench/plugin_actions.py [--runs 21] [--no-venv]

Three runners per action, same plugin, configs and inputs:
- deckhand as installed here (the console script beside this interpreter), whose start-up
  includes this machine's site start-up (.pth files that may import packages);
- deckhand in a venv of its own, installed from this checkout as the reference is
  installed (pip, bytecode compiled at install): the like-for-like comparison;
- the reference, in its venv (scripts/setup/25-bosun-reference.sh installs it).
The ratio is deckhand's median over the reference's; the goal is at most 1/3. Interpreter
floors (`python -c pass` in each environment) are measured in the same run. Action
configs are JSON, as the agent writes them; one row uses hand-written YAML.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.plugin.reference_runner import (  # noqa: E402 - the compat tests' locator
    missing_reason,
    reference_command,
    reference_env,
)

from deckhand.plugin import DeploymentInfo  # noqa: E402
from deckhand.plugins.filesystem.plugin import FilesystemPlugin  # noqa: E402
from deckhand.plugins.test.plugin import SLEEP_KEYS, TestPlugin  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# The console script pip installed (what a `command:` prefix runs), not `-m`, whose runpy
# start-up would add its own imports.
RUNNER_SCRIPT = shutil.which("bosun-plugin-runner", path=str(Path(sys.executable).parent)) or "bosun-plugin-runner"
CACHE = Path(os.environ.get("DECKHAND_CACHE_DIR") or Path.home() / ".cache" / "deckhand")
OWN_VENV = CACHE / "bench" / "deckhand-runner-venv"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_command(
    cmd: list[str], runs: int, before: Callable[[], None] | None = None, env: dict[str, str] | None = None
) -> tuple[float, float]:
    """Median wall and CPU milliseconds of running `cmd` to completion."""
    done = subprocess.run(cmd, capture_output=True, env=env, text=True)  # warm-up (page cache)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}{done.stderr}")
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


def own_venv() -> list[str]:
    """deckhand installed from this checkout into a venv of its own (created once, the
    package reinstalled every run so it is what the checkout holds)."""
    python = OWN_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(OWN_VENV)], check=True)
    with tempfile.TemporaryDirectory(prefix="deckhand-bench-src-") as tmp:
        source = Path(tmp)  # a copy: pip builds in the source tree, which is not the bench's to write
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(REPO / name, source / name)
        shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps"]
            + ["--force-reinstall", str(source), "pyyaml"],
            check=True,
        )
    return [str(python), str(OWN_VENV / "bin" / "bosun-plugin-runner")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--no-venv", action="store_true", help="skip deckhand in a venv of its own")
    args = parser.parse_args()
    runners: dict[str, tuple[list[str], dict[str, str] | None]] = {
        "deckhand (this env)": ([sys.executable, RUNNER_SCRIPT], None),
    }
    if not args.no_venv:
        runners["deckhand (own venv)"] = (own_venv(), reference_env())
    reference = reference_command()
    if reference is not None:
        runners["reference (own venv)"] = (reference, reference_env())
    work = Path(tempfile.mkdtemp(prefix="deckhand-bench-"))
    try:
        rows, commands = run(work, args.runs, runners)
        in_process = run_in_process(work, args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(rows, list(runners))
    if reference is None:
        print(f"\n{missing_reason()}; no ratio.")
    print("\nin-process (no subprocess):")
    for action, (wall, cpu) in in_process:
        print(f"  {action:<34} wall {wall:8.3f} ms  cpu {cpu:8.3f} ms")
    print("\ncommands (WORK is a temporary directory):")
    for name, command in commands.items():
        print(f"  {name}: {command}")
    print(
        f"\nmedians of {args.runs} runs per subprocess cell, 200 per in-process status row; "
        f"python {sys.version.split()[0]}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )


def print_table(rows: list[tuple[str, dict[str, tuple[float, float]]]], names: list[str]) -> None:
    ref = "reference (own venv)"
    width = max(len(action) for action, _ in rows)
    header = f"{'action':<{width}}" + "".join(f" {name:>21}" for name in names)
    ratios = [n for n in names if n != ref] if ref in names else []
    header += "".join(f" {'ratio ' + n.split(' ', 1)[1]:>19}" for n in ratios)
    print(header + "\n" + "-" * len(header))
    for action, cells in rows:
        line = f"{action:<{width}}" + "".join(
            f" {cells[n][0]:>10.1f} ms ({cells[n][1]:>4.0f})" if n in cells else f" {'-':>21}" for n in names
        )
        for n in ratios:
            both = n in cells and ref in cells and not action.startswith("python -c pass")
            line += f" {cells[n][0] / cells[ref][0]:>19.2f}" if both else f" {'':>19}"
        print(line)
    print("wall ms, median (cpu ms of the child in brackets); ratio = deckhand wall / reference wall")


def run(
    work: Path, runs: int, runners: dict[str, tuple[list[str], dict[str, str] | None]]
) -> tuple[list[tuple[str, dict[str, tuple[float, float]]]], dict[str, str]]:
    base = work / "base"
    base.mkdir()
    artifacts = {}
    for label, size in (("1 MB", 1 << 20), ("100 MB", 100 << 20)):
        path = work / f"model-{size}.mlpkg"
        path.write_bytes(os.urandom(size))
        artifacts[label] = path

    def write(name: str, values: dict, as_yaml: bool = False) -> str:
        import yaml

        path = work / name
        path.write_text(yaml.safe_dump(values) if as_yaml else json.dumps(values))
        return str(path)

    plugin_config = {"MLOPS_BOSUN_PRED_ENV_ID": "pe1", "MLOPS_BOSUN_PRED_ENV_ENABLE_MONITORING": False}
    deployment = {"id": "d1", "modelId": "m1", "modelExecutionType": "dedicated"}
    start = {"pluginConfig": plugin_config, "peInfo": {"id": "pe1"}}
    test_private = write("test.json", {"tmp_dir": str(work), **dict.fromkeys(SLEEP_KEYS, 0)})
    fs_private = write(
        "fs.json",
        {
            "baseDir": str(base),
            "deploymentDirPrefix": "deployment_",
            "deploymentInfoFile": "config.yml",
            "deploymentPredictionBaseUrl": "http://localhost:8080",
        },
    )
    status = str(work / "status.yaml")
    cases: list[tuple[str, str, str, str, str, Callable[[], None] | None]] = [
        ("test plugin_start", "test", "plugin_start", write("start.json", start), test_private, None),
        ("test plugin_start, YAML config", "test", "plugin_start", write("s.yaml", start, True), test_private, None),
        (
            "test deployment_status",
            "test",
            "deployment_status",
            write("status.json", {**start, "deploymentInfo": deployment}),
            test_private,
            None,
        ),
    ]

    def clean() -> None:
        for entry in base.iterdir():
            shutil.rmtree(entry)

    for label, artifact in artifacts.items():
        config = write(
            f"fs-{label.replace(' ', '')}.json",
            {**start, "deploymentInfo": {**deployment, "modelArtifact": str(artifact)}},
        )
        action = f"filesystem deployment_start {label}"
        cases.append((action, "filesystem", "deployment_start", config, fs_private, clean))

    def args(plugin: str, action: str, config: str, private: str) -> list[str]:
        return [
            *("--plugin", plugin, "--action", action, "--config", config),
            *("--private-config", private, "--status-file", status),
        ]

    rows: list[tuple[str, dict[str, tuple[float, float]]]] = []
    floors: dict[str, tuple[float, float]] = {}
    commands: dict[str, str] = {}
    for name, (command, env) in runners.items():
        floors[name] = time_command([command[0], "-c", "pass"], runs, env=env)
    rows.append(("python -c pass (interpreter floor)", floors))
    for action, plugin, act, config, private, before in cases:
        cells = {}
        for name, (command, env) in runners.items():
            cells[name] = time_command([*command, *args(plugin, act, config, private)], runs, before=before, env=env)
            if action == "test plugin_start":
                commands[name] = " ".join([*command, *args(plugin, act, config, private)]).replace(str(work), "WORK")
        rows.append((action, cells))
    return rows, commands


def run_in_process(work: Path, runs: int) -> list[tuple[str, tuple[float, float]]]:
    base = work / "base"
    artifact = work / "model-1048576.mlpkg"
    test_plugin = TestPlugin({"tmp_dir": str(work)}, None, None)
    di = DeploymentInfo({"id": "d1", "modelId": "m1", "modelArtifact": str(artifact)})
    fs_plugin = FilesystemPlugin(
        {
            "baseDir": str(base),
            "deploymentDirPrefix": "deployment_",
            "deploymentInfoFile": "config.yml",
            "deploymentPredictionBaseUrl": "http://localhost:8080",
            "MLOPS_BOSUN_PRED_ENV_ENABLE_MONITORING": False,
        }
    )

    def clean() -> None:
        for entry in base.iterdir():
            shutil.rmtree(entry)

    return [
        ("test plugin_start", time_call(lambda: test_plugin.invoke("plugin_start"), 200)),
        ("test deployment_status", time_call(lambda: test_plugin.invoke("deployment_status", di), 200)),
        ("filesystem deployment_start 1 MB", time_call(lambda: fs_plugin.invoke("deployment_start", di), runs, clean)),
        ("filesystem deployment_status", time_call(lambda: fs_plugin.invoke("deployment_status", di), 200)),
    ]


if __name__ == "__main__":
    main()
