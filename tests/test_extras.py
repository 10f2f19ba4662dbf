"""Optional dependencies (deckhand.extras): the one table agrees with pyproject.toml; every
command that needs an extra says which one to install before it starts work (a missing
package is simulated by hiding it from importlib.util.find_spec); and each README section
installs the extras its own commands need."""

from __future__ import annotations

import asyncio
import importlib.machinery
import importlib.metadata
import importlib.util
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from deckhand import extras
from deckhand.agent.config import AgentSettings, EnvironmentSettings
from deckhand.agent.model import EnvironmentInfo
from deckhand.plugin.errors import PluginLoadError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def hide(monkeypatch: pytest.MonkeyPatch):
    """hide("docker"): importlib.util.find_spec no longer finds the package (nor its submodules)."""
    real = importlib.util.find_spec
    hidden: set[str] = set()

    def find_spec(name: str, package: str | None = None) -> importlib.machinery.ModuleSpec | None:
        if name.partition(".")[0] in hidden:
            return None
        return real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    return hidden.add


def cli(*args: str, env: dict[str, str] | None = None) -> Any:
    from deckhand.cli.app import build_app

    return CliRunner().invoke(build_app(), list(args), env=env)


# -- the table ------------------------------------------------------------------------------


def test_the_table_names_the_extras_of_pyproject_and_the_packages_they_install() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    provides = importlib.metadata.packages_distributions()  # import name -> distributions
    for requirement in extras.ALL:
        assert requirement.extra in declared, f"{requirement}: no extra {requirement.extra!r} in pyproject.toml"
        names = {re.split(r"[\[<>=~! ;]", line, maxsplit=1)[0].lower() for line in declared[requirement.extra]}
        dists = {d.lower() for d in provides.get(requirement.module, [])}
        assert dists & names, f"{requirement}: import {requirement.module!r} comes from {dists}, not from {names}"
    user_extras = set(declared) - {"test"}
    assert user_extras == {r.extra for r in extras.ALL}, "an extra of pyproject.toml is missing from deckhand.extras"


def test_lookups_by_plugin_channel_and_database_url() -> None:
    assert extras.for_plugin("docker").extra == "docker"
    assert extras.for_plugin("kubernetes").extra == "kubernetes"
    assert extras.for_plugin("filesystem") is None and extras.for_plugin(None) is None
    assert extras.for_channel("amqp://guest:guest@localhost:5672/%2F").extra == "rabbitmq"
    assert extras.for_channel("amqps://h/v?queue=q").extra == "rabbitmq"
    assert extras.for_channel("spool:/var/spool") is None and extras.for_channel(None) is None
    assert extras.for_database_url("postgresql://u:p@h/db").extra == "postgres"
    assert extras.for_database_url("postgresql+psycopg://u@h/db").extra == "postgres"
    assert extras.for_database_url("postgres://u@h/db").extra == "postgres"
    assert extras.for_database_url("sqlite:////tmp/x.db") is None and extras.for_database_url(None) is None


def test_installed_follows_find_spec(hide) -> None:
    assert extras.installed("docker")
    hide("docker")
    assert not extras.installed("docker")
    assert extras.missing(extras.for_plugin("docker")) is extras.for_plugin("docker")
    assert extras.missing(extras.for_plugin("filesystem")) is None


def test_a_directory_of_that_name_is_not_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pika_lookalike").mkdir()  # a namespace package: found, but nothing installed
    monkeypatch.syspath_prepend(str(tmp_path))
    assert not extras.installed("pika_lookalike")


def test_the_message_names_the_feature_the_package_and_the_pip_command(hide) -> None:
    hide("docker")
    with pytest.raises(extras.MissingExtra) as caught:
        extras.require(extras.for_plugin("docker"), "environment dock")
    message = str(caught.value)
    assert message.startswith("environment dock: the docker plugin needs the Python package `docker`")
    assert "pip install 'deckhand[docker]'" in message


# -- where it is checked --------------------------------------------------------------------


@pytest.mark.parametrize("plugin", ["docker", "kubernetes"])
def test_the_plugin_loader_refuses_a_built_in_whose_extra_is_missing(hide, plugin: str) -> None:
    from deckhand.plugin.loader import load_plugin_class

    hide(plugin)
    with pytest.raises(PluginLoadError, match=re.escape(f"pip install 'deckhand[{plugin}]'")):
        load_plugin_class(plugin)


def test_the_runner_writes_it_in_the_status_file(hide, tmp_path: Path) -> None:
    from deckhand.plugin.runner import main

    hide("docker")
    status, config = tmp_path / "status.yaml", tmp_path / "config.json"
    config.write_text('{"pluginConfig": {}}')
    args = ["--plugin", "docker", "--action", "plugin_start", "--config", str(config), "--status-file", str(status)]
    assert main(args) == 0
    assert "pip install 'deckhand[docker]'" in status.read_text()


def test_the_agent_refuses_the_environment_before_starting_anything(hide, tmp_path: Path) -> None:
    from deckhand.agent.platform_setup import set_up_platform

    hide("docker")
    settings = AgentSettings(work_dir=tmp_path, url="http://127.0.0.1:9", token="t")
    env = EnvironmentInfo(id="dock", platform="docker", plugin="docker")
    refused = r"environment dock \(platform docker, plugin docker\): .*deckhand\[docker\]"
    with pytest.raises(extras.MissingExtra, match=refused):
        asyncio.run(set_up_platform(settings, EnvironmentSettings(id="dock"), env, client=None))
    # a plugin run through `command` is the runner's to check, in its own process
    command = EnvironmentSettings(id="dock", command="bosun-plugin-runner --plugin docker")
    platform = asyncio.run(set_up_platform(settings, command, env, client=None))
    asyncio.run(platform.stop())


class EnvironmentsClient:
    """What build_agents asks the control plane at start-up."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def get_environment(self, env_id: str) -> dict[str, Any]:
        return {"id": f"id-{env_id}", "platform": env_id, "plugin": env_id}


def test_deckhand_agent_exits_with_the_message(hide, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import deckhand.client

    hide("kubernetes")
    monkeypatch.setattr(deckhand.client, "ControlPlaneClient", EnvironmentsClient)
    config = tmp_path / "agent.yaml"
    config.write_text(
        f"url: http://127.0.0.1:9\ntoken: t\nworkDir: {tmp_path}\nenvironments: [{{id: local}}, {{id: kubernetes}}]\n"
    )
    result = cli("agent", "--config", str(config))
    assert result.exit_code == 2, result.output
    assert "environment id-kubernetes (platform kubernetes, plugin kubernetes)" in result.output
    assert "pip install 'deckhand[kubernetes]'" in result.output
    assert not list(tmp_path.glob("*/prediction-server.*")), "the local environment was started all the same"


def test_deckhand_agent_with_a_desired_state_file(hide, tmp_path: Path) -> None:
    hide("docker")
    state = tmp_path / "deployments.yaml"
    state.write_text("environment: {id: dock, platform: docker}\ndeployments: []\n")
    result = cli("agent", "--desired-state", str(state), "--work-dir", str(tmp_path / "work"))
    assert result.exit_code == 2, result.output
    assert "environment dock" in result.output and "pip install 'deckhand[docker]'" in result.output


class CreatingClient:
    created: list[dict[str, Any]] = []

    def create_environment(self, **body: Any) -> dict[str, Any]:
        self.created.append(body)
        return {"id": "e1", "name": body["name"], "plugin": body.get("plugin") or body["platform"]}


def test_env_create_warns_and_creates_all_the_same(hide, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control plane and the CLI may run elsewhere than the agent: a warning, not a refusal."""
    from deckhand.cli import control_plane_commands

    hide("docker")
    CreatingClient.created.clear()
    monkeypatch.setattr(control_plane_commands, "_client", lambda server, token: CreatingClient())
    result = cli("env", "create", "dock", "--platform", "docker")
    assert result.exit_code == 0, result.output
    assert "warning: the docker plugin needs the Python package `docker`" in result.output
    assert "pip install 'deckhand[docker]'" in result.output
    assert CreatingClient.created and CreatingClient.created[0]["platform"] == "docker"

    result = cli("env", "create", "files", "--platform", "filesystem")
    assert result.exit_code == 0 and "warning" not in result.output


def test_deckhand_server_refuses_a_postgresql_url_without_psycopg(hide, tmp_path: Path) -> None:
    hide("psycopg")
    result = cli("server", "--data-dir", str(tmp_path), "--database-url", "postgresql://u:secret@127.0.0.1:9/db")
    assert result.exit_code == 2, result.output
    assert "a postgresql:// database needs the Python package `psycopg`" in result.output
    assert "pip install 'deckhand[postgres]'" in result.output
    result = cli("server", "--data-dir", str(tmp_path), env={"DECKHAND_DATABASE_URL": "postgres://u@127.0.0.1:9/db"})
    assert result.exit_code == 2 and "deckhand[postgres]" in result.output


def test_deckhand_serve_refuses_an_amqp_channel_without_pika(hide, demo_package: Path) -> None:
    hide("pika")
    spec = "amqp://guest:guest@127.0.0.1:9/%2F"
    result = cli("serve", "--package", str(demo_package), "--port", "9", "--monitoring", spec)
    assert result.exit_code == 2, result.output
    assert "an amqp:// monitoring channel (RabbitMQ) needs the Python package `pika`" in result.output
    assert "pip install 'deckhand[rabbitmq]'" in result.output
    result = cli("serve", "--package", str(demo_package), "--port", "9", env={"DECKHAND_MONITORING": spec})
    assert result.exit_code == 2 and "deckhand[rabbitmq]" in result.output


def test_the_tracking_agent_and_the_reporter_say_it_too(hide) -> None:
    from deckhand.monitoring import ChannelConfigError, channel_from_spec

    hide("pika")
    with pytest.raises(ChannelConfigError, match=re.escape("pip install 'deckhand[rabbitmq]'")):
        channel_from_spec("amqp://guest:guest@127.0.0.1:9/%2F")
    result = cli("tracking-agent", "--channel", "amqp://127.0.0.1:9/", "--server", "http://127.0.0.1:9", "--token", "t")
    assert result.exit_code == 2 and "deckhand[rabbitmq]" in result.output


def test_building_or_loading_an_onnx_package_without_onnxruntime_names_the_extra(hide) -> None:
    from deckhand.packages import PackageError
    from deckhand.packages.formats import format_module

    hide("onnxruntime")
    with pytest.raises(PackageError, match=re.escape("the onnx model format needs the Python package `onnxruntime`")):
        format_module("onnx")
    assert format_module("sklearn").__name__ == "deckhand.packages.formats.sklearn_format"


# -- the README -----------------------------------------------------------------------------


def readme_sections() -> dict[str, list[list[str]]]:
    """Each `## ` section of the README -> the shell commands of its bash blocks, as argv
    lists (continuation lines joined; `&&`, `;`, `|` and `&` split; comments dropped)."""
    sections: dict[str, list[list[str]]] = {}
    title = ""
    in_block = False
    lines: list[str] = []
    for line in (REPO / "README.md").read_text().splitlines():
        stripped = line.strip()
        if not in_block and line.startswith("## "):
            title = line[3:].strip()
            sections[title] = []
        elif stripped.startswith("```"):
            if in_block:
                sections[title].extend(shell_commands("\n".join(lines)))
            in_block, lines = (not in_block and stripped in ("```bash", "```sh", "```shell")), []
        elif in_block:
            lines.append(stripped)
    return sections


def shell_commands(text: str) -> list[list[str]]:
    commands: list[list[str]] = []
    for line in text.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        current: list[str] = []
        for token in lexer:
            if set(token) <= set(";&|"):
                commands.append(current)
                current = []
            else:
                current.append(token)
        commands.append(current)
    return [c for c in commands if c]


def program(argv: list[str]) -> tuple[str, list[str]]:
    """The command's name and arguments, past leading VAR=value assignments (kept as args)."""
    assignments = [w for w in argv if re.match(r"^[A-Z_][A-Z0-9_]*=", w)]
    rest = argv[len(assignments) :] if argv[: len(assignments)] == assignments else argv
    return (rest[0] if rest else ""), [*assignments, *rest[1:]]


def installs(argv: list[str]) -> set[str]:
    """The extras a `pip install` command installs (from `.[a,b]` or `deckhand[a,b]`)."""
    name, args = program(argv)
    if not (name in ("pip", "pip3") or argv[:3] == ["python", "-m", "pip"]) or "install" not in args:
        return set()
    found: set[str] = set()
    for arg in args:
        match = re.match(r"^(?:\.|deckhand)\[([a-z0-9_,-]+)\]", arg)
        if match:
            found.update(match.group(1).split(","))
    return found


def needs(argv: list[str]) -> set[str]:
    """The extras a `deckhand` or `bosun-plugin-runner` command needs, by deckhand.extras."""
    name, args = program(argv)
    wanted = []
    for i, arg in enumerate(args):
        key, _, value = arg.partition("=")
        if not value and i + 1 < len(args):
            value = args[i + 1]
        if key in ("--platform", "--plugin"):
            wanted.append(extras.for_plugin(value))
        elif key in ("--monitoring", "--channel", "DECKHAND_MONITORING"):
            wanted.append(extras.for_channel(value))
        elif key in ("--database-url", "DECKHAND_DATABASE_URL"):
            wanted.append(extras.for_database_url(value))
        elif key in ("--artifact-store", "DECKHAND_ARTIFACT_STORE"):
            wanted.append(extras.for_artifact_store(value))
    if name not in ("deckhand", "bosun-plugin-runner") and not any(k.startswith("DECKHAND_") for k in args):
        return set()
    return {r.extra for r in wanted if r is not None}


def test_every_readme_section_installs_the_extras_its_commands_need() -> None:
    sections = readme_sections()
    summary = {}
    for title, commands in sections.items():
        installed = set().union(*(installs(c) for c in commands))
        needed = set().union(*(needs(c) for c in commands))
        summary[title] = (sorted(needed), sorted(installed))
        assert needed <= installed, (
            f"README section {title!r}: its commands need the extras {sorted(needed - installed)} that its own "
            f"pip install line does not install (add pip install -e '.[{','.join(sorted(needed))}]')"
        )
    print(summary)
    # The parse found what it must: the set-up's install and the two sections that need an extra.
    assert any(c[:3] == ["pip", "install", "-e"] for c in sections["Set up"])
    docker = next(t for t in sections if t.startswith("Docker"))
    assert summary[docker][0] == ["docker"] and summary["Kubernetes"][0] == ["kubernetes"]
    assert any(c and c[0] == "bosun-plugin-runner" for c in sections["Plugins and the runner"])


def test_the_readme_parser_sees_options_in_every_form() -> None:
    assert installs(["pip", "install", "-e", ".[docker,kubernetes]"]) == {"docker", "kubernetes"}
    assert installs(["python", "-m", "pip", "install", "deckhand[postgres]"]) == {"postgres"}
    assert installs(["pip", "install", "-e", "."]) == set()
    assert needs(["deckhand", "env", "create", "d", "--platform", "docker"]) == {"docker"}
    assert needs(["deckhand", "env", "create", "d", "--platform=kubernetes"]) == {"kubernetes"}
    assert needs(["DECKHAND_DATABASE_URL=postgresql://h/db", "deckhand", "server"]) == {"postgres"}
    assert needs(["deckhand", "serve", "--monitoring", "amqp://h/"]) == {"rabbitmq"}
    assert needs(["bosun-plugin-runner", "--plugin", "filesystem"]) == set()
    assert shell_commands("a x && b \\\n  --y 1 & c # note\nd") == [["a", "x"], ["b", "--y", "1"], ["c"], ["d"]]


def readme_block_lines(section: str) -> list[str]:
    """The logical lines (continuations joined) of a README section's bash blocks, as written."""
    text, in_section, in_block, lines = (REPO / "README.md").read_text(), False, False, []
    for line in text.splitlines():
        if not in_block and line.startswith("## "):
            in_section = line[3:].strip() == section
        elif line.strip().startswith("```"):
            in_block = in_section and not in_block and line.strip() == "```bash"
        elif in_block:
            lines.append(line.strip())
    return [line for line in "\n".join(lines).replace("\\\n", " ").splitlines() if line]


def fresh_venv(tmp_path: Path) -> dict[str, str]:
    """A fresh venv (no system site-packages) holding only `pip install` of this checkout, no
    extra; returns the environment a shell in it runs with (its bin first on PATH)."""
    import shutil
    import subprocess
    import sys
    import time

    source = tmp_path / "src"  # a copy: pip builds in the source tree, which is not ours to write
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    venv = tmp_path / "venv"
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(source)], capture_output=True, text=True
    )
    print(f"fresh venv with deckhand installed in {time.monotonic() - started:.0f} s")
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]
    for module in ("docker", "kubernetes", "pika", "psycopg", "onnxruntime", "pytest"):
        found = subprocess.run([str(venv / "bin" / "python"), "-c", f"import {module}"], capture_output=True)
        assert found.returncode != 0, f"{module} is in the fresh venv: it is not fresh"
    return {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}


@pytest.mark.slow
def test_the_plugins_section_as_written_in_a_fresh_venv(tmp_path: Path) -> None:
    """A fresh venv (no system site-packages) holding only `pip install` of this checkout, no
    extra: the Plugins section's commands run as written; a built-in plugin whose extra is
    missing says which to install. About 30 s with pip's cache warm, a few minutes cold."""
    import subprocess

    env = fresh_venv(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    status = tmp_path / "status.yaml"
    outputs = {}
    for line in readme_block_lines("Plugins and the runner"):
        command = line.split("#", 1)[0].strip().replace("/tmp/status.yaml", str(status))
        if command.endswith("..."):  # `deckhand plugin run ...`: "the same runner", with any of its flags
            command = command.removesuffix("...") + "--list-actions"
        run = subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, f"{command}\n{run.stdout}{run.stderr}"
        outputs[command] = run.stdout
    assert outputs["bosun-plugin-runner --list-actions"] == outputs["deckhand plugin run --list-actions"]
    assert "filesystem" in outputs["bosun-plugin-runner --list-plugins"]
    assert (work / "start.yaml").is_file()
    assert "fs.yaml" in status.read_text()  # the README's private config is the user's to write: named

    (work / "empty.json").write_text('{"pluginConfig": {}}')
    docker = subprocess.run(
        ["bosun-plugin-runner", "--plugin", "docker", "--action", "plugin_start", "--config", "empty.json"]
        + ["--status-file", str(status), "--show-status"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert "pip install 'deckhand[docker]'" in docker.stdout, docker.stdout + docker.stderr


CANARY_SECTION = "Canary rollouts, challengers and rollback"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_canary_section_as_written_in_a_fresh_venv(tmp_path: Path) -> None:
    """The README's canary, as one bash script in a fresh venv: quickstart in the background,
    a canary with gates under a curl loop, promoted (`rollout --wait` exits 0), revision 2
    in the history; and nothing left running afterwards."""
    import subprocess

    env = fresh_venv(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    script = "set -e\n" + "\n".join(readme_block_lines(CANARY_SECTION)) + "\nwait\n"
    env["COLUMNS"] = "200"  # rich tables unwrapped, for the checks below
    run = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=500)
    log = (work / "qs.log").read_text() if (work / "qs.log").exists() else ""
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\n--- qs.log\n{log[-3000:]}"
    print(run.stdout, run.stderr)
    assert "promoted at 100 %" in run.stderr, run.stderr
    history = run.stdout.split("model revisions of deployment iris", 1)[-1]
    revision_2 = next(line for line in history.splitlines() if line.startswith("│ 2 "))
    assert "scheduled_refresh" in revision_2 and "rollout-controller" in revision_2, history
    assert not (work / "qs" / "deckhand.env").exists()  # the quickstart stopped and took its token file along
