"""deckhand's runner against the reference runner (datarobot-bosun, the runner the seeds
document): the same plugin, configs and inputs through both, in two fresh directories laid
out alike, then equal exit codes, status fields (status, state), status data (every key
the reference writes; deckhand may add keys) and files written (the same paths; YAML/JSON
content holding every key the reference writes, other files byte for byte).

Where deckhand differs on purpose, the case names the difference from DELIBERATE, which is
the written list of what this module allows (docs/plugins.md explains each for users).
Not compared: `msg` text (deckhand's messages say more), `duration` and timestamps.
The docker and kubernetes plugins are not compared: they need a live engine or cluster and
the reference's extras, which its set-up does not install.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.plugin.reference_runner import missing_reason, reference_command, reference_env

from deckhand.plugins.test.plugin import SLEEP_KEYS

pytestmark = pytest.mark.reference

# Each deliberate difference and why; a case allows only those it names.
DELIBERATE: dict[str, str] = {
    "config-error-status": "a missing or malformed --config is a failing status file (exit 0), as every failure "
    "after argument parsing is; the reference crashes with a traceback, exit 1 and no status file",
    "status-dir-checked-first": "a status file in a missing directory is refused before the action runs (exit 1 "
    "both); the reference runs the action, then crashes, so its changes go unrecorded",
    "dry-run": "--dry-run is honoured; the reference's filesystem and test plugins ignore it and change things",
    "keep-old-model": "a replacement whose artifact is missing keeps the old model serving (failing, state ready, "
    "oldModelInUse); the reference deletes the deployment directory first and leaves nothing",
    "list-actions": "--list-actions leaves out endpoint_update/endpoint_status: undocumented, and the reference's "
    "base class returns None for them, so they always fail there",
    "list-plugins": "--list-plugins lists deckhand's built-ins (and installed entry points), not the reference's "
    "cloud plugins (s3, snowflake, azureml, sagemaker, sap_ai_core)",
    "gen-config-text": "--gen-config writes deckhand's commented template (same sections), not the reference's sample",
    "base-dir-missing": "with baseDir missing, deployment_start fails and deployment_list is failing; the reference "
    "creates baseDir on start and lists nothing (so an agent would take every deployment as gone)",
}


@dataclass
class Case:
    """One run of both runners. `args` and file contents may hold {work}, the run's directory."""

    id: str
    args: list[str]
    inputs: dict[str, Any] = field(default_factory=dict)  # path under {work}/in -> dict (JSON) or text
    before: list[list[str]] = field(default_factory=list)  # runner args run first, by the same runner
    allow: tuple[str, ...] = ()  # keys of DELIBERATE


PLUGIN_CONFIG = {
    "MLOPS_BOSUN_PRED_ENV_ID": "pe1",
    "MLOPS_BOSUN_PRED_ENV_TYPE": "ExternalCommand",
    "MLOPS_BOSUN_PRED_ENV_PLATFORM": "os",
    "MLOPS_BOSUN_PRED_ENV_ENABLE_MONITORING": False,
}
FS_PRIVATE = {
    "baseDir": "{work}/out/base",
    "deploymentDirPrefix": "deployment_",
    "deploymentInfoFile": "config.yml",
    "deploymentPredictionBaseUrl": "http://localhost:8080",
}
TEST_PRIVATE = {"tmp_dir": "{work}/out/tmp"} | dict.fromkeys(SLEEP_KEYS, 0)


def deployment(dep_id: str = "d1", model: str = "A", **extra: Any) -> dict[str, Any]:
    return {
        "id": dep_id,
        "name": f"deployment {dep_id}",
        "modelId": f"model-{model}",
        "modelArtifact": f"{{work}}/in/model-{model}.mlpkg",
        "modelExecutionType": "dedicated",
        "keyValueConfig": {"tier": "gold"},
        **extra,
    }


def action_config(dep: dict[str, Any] | None = None, pe_deployments: list[dict[str, Any]] | None = None) -> dict:
    config: dict[str, Any] = {
        "pluginConfig": PLUGIN_CONFIG,
        "peInfo": {"id": "pe1", "deployments": pe_deployments or []},
    }
    if dep is not None:
        config["deploymentInfo"] = dep
    return config


def run_args(plugin: str, action: str, config: str, private: str | None, *extra: str) -> list[str]:
    args = ["--plugin", plugin, "--action", action, "--config", f"{{work}}/in/{config}"]
    if private:
        args += ["--private-config", f"{{work}}/in/{private}"]
    return [*args, "--status-file", "{work}/status/status.yaml", *extra]


REPLACED = deployment(model="A", newModelId="model-B", modelArtifact="{work}/in/model-B.mlpkg")
STANDARD_INPUTS: dict[str, Any] = {
    "fs.json": FS_PRIVATE,
    "test.json": TEST_PRIVATE,
    "none.json": action_config(),
    "d1.json": action_config(deployment()),
    "d1-replace.json": action_config(REPLACED),
    "d1-missing-artifact.json": action_config(deployment(model="C", newModelId="model-C")),
    "pe.json": action_config(pe_deployments=[deployment(), deployment("absent")]),
}


def plugin_cases(plugin: str, private: str) -> list[Case]:
    def args(action: str, config: str = "d1.json", *extra: str) -> list[str]:
        return run_args(plugin, action, config, private, *extra)

    start = args("deployment_start")
    p = plugin
    return [
        Case(f"{p}-plugin_start", args("plugin_start", "none.json")),
        Case(f"{p}-plugin_stop", args("plugin_stop", "none.json"), before=[args("plugin_start", "none.json")]),
        Case(f"{p}-deployment_start", start, before=[args("plugin_start", "none.json")]),
        Case(f"{p}-deployment_start-twice", start, before=[start]),
        Case(f"{p}-deployment_status-running", args("deployment_status"), before=[start]),
        Case(f"{p}-deployment_status-never-started", args("deployment_status")),
        Case(
            f"{p}-deployment_list-empty",
            args("deployment_list", "none.json"),
            before=[args("plugin_start", "none.json")],
        ),
        Case(f"{p}-deployment_list-one", args("deployment_list", "none.json"), before=[start]),
        Case(f"{p}-deployment_replace_model", args("deployment_replace_model", "d1-replace.json"), before=[start]),
        Case(f"{p}-deployment_stop-running", args("deployment_stop"), before=[start]),
        Case(f"{p}-deployment_stop-never-started", args("deployment_stop")),
        Case(f"{p}-deployment_relaunch", args("deployment_relaunch"), before=[start]),
        Case(f"{p}-pe_status", args("pe_status", "pe.json"), before=[args("plugin_start", "none.json"), start]),
        Case(f"{p}-pe_status-nothing-started", args("pe_status", "pe.json")),
        Case(f"{p}-unknown-action", args("deployment_explode")),
        Case(f"{p}-unknown-action-exit-codes", args("deployment_explode", "d1.json", "--exit-codes")),
        Case(f"{p}-failing-exit-codes", args("deployment_status", "d1.json", "--exit-codes")),
        Case(f"{p}-show-status", args("plugin_start", "none.json", "--show-status")),
        Case(f"{p}-private-config-missing", run_args(p, "plugin_start", "none.json", "nope.json")),
        Case(f"{p}-private-config-malformed", run_args(p, "plugin_start", "none.json", "bad.txt")),
    ]


def _without(args: list[str], flag: str) -> list[str]:
    """`args` less `flag` and its value."""
    at = args.index(flag)
    return args[:at] + args[at + 2 :]


BAD_PLUGINS = {
    "syntax_error.py": "def broken(:\n",
    "no_class.py": "X = 1\n",
    "two_classes.py": textwrap.dedent(
        """
        from bosun.plugin.bosun_plugin_base import BosunPluginBase
        class A(BosunPluginBase): pass
        class B(BosunPluginBase): pass
        """
    ),
    "returns_none.py": textwrap.dedent(
        """
        from bosun.plugin.bosun_plugin_base import BosunPluginBase
        class Nothing(BosunPluginBase):
            def plugin_start(self): return None
            def plugin_stop(self): raise RuntimeError("cannot reach the environment")
            def deployment_list(self): return None
            def deployment_start(self, di): return None
            def deployment_stop(self, deployment_id): return None
            def deployment_replace_model(self, di): return None
            def pe_status(self): return None
            def deployment_status(self, di): return None
        """
    ),
}

CASES: list[Case] = [
    *plugin_cases("filesystem", "fs.json"),
    *plugin_cases("test", "test.json"),
    Case("filesystem-alias", run_args("filesystem_plugin", "plugin_start", "none.json", "fs.json")),
    Case("filesystem-no-private-config", run_args("filesystem", "plugin_start", "none.json", None)),
    Case("filesystem-private-config-without-keys", run_args("filesystem", "plugin_start", "none.json", "test.json")),
    Case(
        "filesystem-replace-never-started",
        run_args("filesystem", "deployment_replace_model", "d1-replace.json", "fs.json"),
    ),
    Case(
        "filesystem-replace-missing-artifact",
        run_args("filesystem", "deployment_replace_model", "d1-missing-artifact.json", "fs.json"),
        before=[run_args("filesystem", "deployment_start", "d1.json", "fs.json")],
        allow=("keep-old-model",),
    ),
    Case(
        "filesystem-start-missing-artifact",
        run_args("filesystem", "deployment_start", "d1-missing-artifact.json", "fs.json"),
    ),
    Case(
        "filesystem-broken-deployment-listed",
        run_args("filesystem", "deployment_list", "none.json", "fs.json"),
        inputs={"../out/base/deployment_broken/readme.txt": "no config.yml here"},
    ),
    Case(
        "filesystem-base-dir-missing-start",
        run_args("filesystem", "deployment_start", "d1.json", "fs-elsewhere.json"),
        allow=("base-dir-missing",),
    ),
    Case(
        "filesystem-base-dir-missing-plugin_start",
        run_args("filesystem", "plugin_start", "none.json", "fs-elsewhere.json"),
    ),
    Case(
        "filesystem-dry-run-start",
        run_args("filesystem", "deployment_start", "d1.json", "fs.json", "--dry-run"),
        allow=("dry-run",),
    ),
    Case(
        "test-dry-run-start",
        run_args("test", "deployment_start", "d1.json", "test.json", "--dry-run"),
        allow=("dry-run",),
    ),
    Case("test-raise-exception", run_args("test", "plugin_start", "none.json", "test-raise.json")),
    Case("test-replace-never-started", run_args("test", "deployment_replace_model", "d1-replace.json", "test.json")),
    Case("unknown-plugin", run_args("no_such_plugin_q", "plugin_start", "none.json", None)),
    Case("unknown-plugin-exit-codes", run_args("no_such_plugin_q", "plugin_start", "none.json", None, "--exit-codes")),
    *(
        Case(f"plugin-{name[:-3]}", run_args(f"{{work}}/in/{name}", "plugin_start", "none.json", None))
        for name in BAD_PLUGINS
    ),
    Case("plugin-raises", run_args("{work}/in/returns_none.py", "plugin_stop", "none.json", None)),
    Case("plugin-returns-none-deployment", run_args("{work}/in/returns_none.py", "deployment_status", "d1.json", None)),
    Case(
        "config-missing",
        run_args("test", "plugin_start", "nope.json", "test.json"),
        allow=("config-error-status",),
    ),
    Case(
        "config-malformed",
        run_args("test", "plugin_start", "bad.txt", "test.json"),
        allow=("config-error-status",),
    ),
    Case(
        "status-file-in-missing-directory",
        ["--plugin", "test", "--action", "plugin_start", "--config", "{work}/in/none.json"]
        + ["--private-config", "{work}/in/test.json", "--status-file", "{work}/no-such-dir/status.yaml"],
        allow=("status-dir-checked-first",),
    ),
    Case(
        "status-file-in-missing-directory-no-change",
        ["--plugin", "filesystem", "--action", "deployment_status", "--config", "{work}/in/d1.json"]
        + ["--private-config", "{work}/in/fs.json", "--status-file", "{work}/no-such-dir/status.yaml"],
    ),
    Case("no-arguments", []),
    *(
        Case(f"missing-{flag[2:]}", _without(run_args("test", "plugin_start", "none.json", "test.json"), flag))
        for flag in ("--plugin", "--action", "--config", "--status-file")
    ),
    Case("gen-config-without-action", ["--gen-config"]),
    Case("gen-config-unknown-action", ["--gen-config", "--action", "explode"]),
    Case("gen-config-stdout", ["--gen-config", "--action", "deployment_start"], allow=("gen-config-text",)),
    Case("list-actions", ["--list-actions"], allow=("list-actions",)),
    Case("list-plugins", ["--list-plugins"], allow=("list-plugins",)),
    Case("bad-log-level", ["--log-level", "LOUD", "--list-actions"]),
]

# What each allowance lets differ ("exit", "status", "files"); _check_allowed then says
# what deckhand must do instead. stdout is never compared as such: the reference logs there.
ALLOWANCE_SKIPS: dict[str, set[str]] = {
    "config-error-status": {"exit", "status"},
    "status-dir-checked-first": {"files"},
    "dry-run": {"status", "files"},
    "keep-old-model": {"status", "files"},
    "list-actions": set(),
    "list-plugins": set(),
    "gen-config-text": set(),
    "base-dir-missing": {"status", "files"},
}
EXTRA_INPUTS: dict[str, Any] = {
    "bad.txt": "pluginConfig: [unclosed\n",
    "fs-elsewhere.json": {**FS_PRIVATE, "baseDir": "{work}/out/no-such-base"},
    "test-raise.json": {**TEST_PRIVATE, "raise_exception": True},
    "model-A.mlpkg": "model A " * 100,
    "model-B.mlpkg": "model B " * 200,
    **BAD_PLUGINS,
}
# What the run's directory reads as in status and files (plain: YAML takes "{" as a mapping).
WORK = "WORKDIR"
# Values that differ from run to run; compared for presence only.
VOLATILE_KEYS = frozenset({"timestamp", "duration", "status_timestamp"})


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    status: dict[str, Any] | None
    files: dict[str, Any]  # path under out/ -> parsed YAML/JSON, or text


def _deckhand_command() -> list[str]:
    return [sys.executable, "-m", "deckhand.plugin.runner"]


def _fill(value: Any, work: Path) -> Any:
    text = value if isinstance(value, str) else json.dumps(value, indent=2)
    return text.replace("{work}", str(work))


def _run(command: list[str], env: dict[str, str] | None, case: Case, work: Path) -> Outcome:
    for rel in ("in", "out/base", "out/tmp", "status"):
        (work / rel).mkdir(parents=True, exist_ok=True)
    for name, content in {**STANDARD_INPUTS, **EXTRA_INPUTS, **case.inputs}.items():
        path = work / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_fill(content, work))

    def runner(args: list[str]) -> subprocess.CompletedProcess[str]:
        filled = [a.replace("{work}", str(work)) for a in args]
        return subprocess.run([*command, *filled], cwd=work, env=env, capture_output=True, text=True, timeout=120)

    for before in case.before:
        done = runner(before)
        assert done.returncode == 0, f"set-up run {before} failed: {done.stdout}{done.stderr}"
        (work / "status" / "status.yaml").unlink(missing_ok=True)
    proc = runner(case.args)
    status_path = next((Path(a.replace("{work}", str(work))) for a in _flag_values(case.args, "--status-file")), None)
    status = None
    if status_path is not None and status_path.exists():
        status = yaml.safe_load(status_path.read_text().replace(str(work), WORK))
    files = {}
    for path in sorted((work / "out").rglob("*")):
        if path.is_file():
            text = path.read_text(errors="replace").replace(str(work), WORK)
            try:
                files[str(path.relative_to(work / "out"))] = yaml.safe_load(text)
            except yaml.YAMLError:
                files[str(path.relative_to(work / "out"))] = text
    return Outcome(proc.returncode, proc.stdout, proc.stderr, status, files)


def _flag_values(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == flag]


def _assert_holds(reference: Any, ours: Any, where: str) -> None:
    """Every key the reference wrote is in ours with the same value (volatile keys: present;
    msg: null where the reference's is null). No data at all in the reference allows any."""
    if reference is None and isinstance(ours, dict):
        return
    if isinstance(reference, dict):
        ours = {} if ours is None else ours
        assert isinstance(ours, dict), f"{where}: reference wrote a mapping, deckhand {ours!r}"
        for key, value in reference.items():
            assert key in ours, f"{where}: deckhand lacks key {key!r} (reference: {value!r})"
            if key in VOLATILE_KEYS:
                continue
            if key == "msg":
                assert (ours[key] is None) == (value is None), (
                    f"{where}.msg: reference {value!r}, deckhand {ours[key]!r}"
                )
                continue
            _assert_holds(value, ours[key], f"{where}.{key}")
    else:
        assert reference == ours, f"{where}: reference {reference!r}, deckhand {ours!r}"


def _compare(case: Case, ref: Outcome, ours: Outcome) -> None:
    skips = set().union(*(ALLOWANCE_SKIPS[a] for a in case.allow)) if case.allow else set()
    context = "".join(
        f"\n{name}: rc={o.returncode} {o.status}\n{o.stderr[-1500:]}"
        for name, o in (("reference", ref), ("deckhand", ours))
    )
    if "exit" not in skips:
        assert ours.returncode == ref.returncode, "exit codes differ" + context
    if "status" not in skips:
        assert (ours.status is None) == (ref.status is None), "one runner wrote no status file" + context
        if ref.status is not None and ours.status is not None:
            assert sorted(ours.status) == sorted(ref.status), context
            for key in ("status", "state"):
                assert ours.status[key] == ref.status[key], f"{key} differs" + context
            _assert_holds(ref.status["data"], ours.status["data"], "data")
    if "files" not in skips:
        assert sorted(ours.files) == sorted(ref.files), "files written differ" + context
        for path, content in ref.files.items():
            if isinstance(content, (dict, list)):
                _assert_holds(content, ours.files[path], path)
            else:
                assert ours.files[path] == content, f"{path} differs"


def _check_allowed(case: Case, ref: Outcome, ours: Outcome) -> None:
    """What deckhand does instead where it differs on purpose."""
    for allowance in case.allow:
        if allowance == "config-error-status":
            assert ref.returncode == 1 and ref.status is None and "Traceback" in ref.stderr + ref.stdout
            assert ours.returncode == 0 and ours.status is not None
            assert (ours.status["status"], ours.status["state"], ours.status["duration"]) == (
                "failing",
                "errored",
                None,
            )
        elif allowance == "status-dir-checked-first":
            assert ref.returncode == ours.returncode == 1 and ref.files and not ours.files
        elif allowance == "dry-run":
            assert ref.files and not ours.files and ours.status["status"] == "passing"
        elif allowance == "keep-old-model":
            assert (ref.status["status"], ref.status["state"]) == ("failing", "errored")
            assert (ours.status["status"], ours.status["state"]) == ("failing", "ready")
            assert ours.status["data"]["oldModelInUse"] is True and "base/deployment_d1/config.yml" in ours.files
        elif allowance in ("list-actions", "list-plugins"):
            ours_lines, ref_lines = ours.stdout.split(), ref.stdout.split()
            assert ours_lines and set(ours_lines) <= set(ref_lines), (ours_lines, ref_lines)
        elif allowance == "gen-config-text":
            ours_keys = set(yaml.safe_load(ours.stdout))
            ref_keys = set(yaml.safe_load(ref.stdout))
            assert ours_keys == ref_keys == {"pluginConfig", "peInfo", "deploymentInfo"}
        elif allowance == "base-dir-missing":
            assert ref.status["status"] == "passing" and ref.files
            assert (ours.status["status"], ours.status["state"]) == ("failing", "errored") and not ours.files
        else:  # pragma: no cover - a case naming an allowance nobody wrote down
            raise AssertionError(f"{case.id}: {allowance!r} is not in DELIBERATE")


@pytest.fixture(scope="module")
def reference() -> list[str]:
    command = reference_command()
    if command is None:
        pytest.skip(missing_reason())
    return command


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_same_as_the_reference_runner(case: Case, reference: list[str], tmp_path: Path) -> None:
    assert set(case.allow) <= set(DELIBERATE), f"{case.id}: allowances must be listed in DELIBERATE"
    ref = _run(reference, reference_env(), case, tmp_path / "reference")
    ours = _run(_deckhand_command(), None, case, tmp_path / "deckhand")
    _compare(case, ref, ours)
    _check_allowed(case, ref, ours)


def test_every_deliberate_difference_is_exercised() -> None:
    used = {a for case in CASES for a in case.allow}
    assert used == set(DELIBERATE), f"listed but never exercised: {set(DELIBERATE) - used}"
    assert set(ALLOWANCE_SKIPS) == set(DELIBERATE)
