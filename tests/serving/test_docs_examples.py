"""docs/serving.md §2 runs as written: its package and serve commands, then each curl of
its examples against that real `deckhand serve`, checked against the answer the docs print
under it (every quoted string and every key of the printed answer must be in the real one)."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from deckhand.serving.testing import ServeProcess

DOCS = Path(__file__).resolve().parents[2] / "docs" / "serving.md"
DOC_PORT = "localhost:8080"


@dataclass
class Example:
    command: str
    answer: str  # the comment the docs print under (or beside) the command; "" for none


def bash_blocks(section: str) -> list[str]:
    """The ```bash blocks between the heading `section` and the next heading of its level or
    higher (a `#` line inside a fenced block is a shell comment, not a heading)."""
    level = len(section.split(" ", 1)[0])
    blocks: list[str] = []
    inside = fenced = bash = False
    for line in DOCS.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
            bash = fenced and inside and line.strip() == "```bash"
            if bash:
                blocks.append("")
        elif bash:
            blocks[-1] += line + "\n"
        elif not fenced and line.startswith("#"):
            if line.startswith(section):
                inside = True
            elif inside and len(line) - len(line.lstrip("#")) <= level:
                break
    return blocks


def curl_examples(block: str) -> list[Example]:
    """Each `curl` command (with its continuation lines and multi-line quoted bodies) and the
    comment lines that follow it, or the comment beside it."""
    examples: list[Example] = []
    for line in block.splitlines():
        if line.startswith("curl "):
            command, _, beside = line.partition("  #")
            examples.append(Example(command.rstrip(), beside.strip()))
        elif line.startswith("#") and examples:
            examples[-1].answer += line.lstrip("# ").strip()
        elif examples and not examples[-1].answer and line.strip():
            examples[-1].command += "\n" + line
    return examples


def promised(answer: str) -> list[str]:
    """What the printed answer promises: its quoted strings (keys and values) and `true`/`false`."""
    quoted = re.findall(r'"([^"]*)"', answer)
    return quoted + re.findall(r"\b(true|false)\b", answer)


@pytest.fixture(scope="module")
def served_demo(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The docs' own set-up: `deckhand package demo -o demo.dhpkg` and `deckhand serve --package demo.dhpkg`."""
    workdir = tmp_path_factory.mktemp("docs")
    subprocess.run(["deckhand", "package", "demo", "-o", "demo.dhpkg"], cwd=workdir, check=True, timeout=120)
    with ServeProcess(["--package", str(workdir / "demo.dhpkg")], workdir / "serve.log") as server:
        server.wait_ready()
        yield server


def _run(example: Example, url: str) -> str:
    command = example.command.replace(DOC_PORT, url.removeprefix("http://"))
    done = subprocess.run(
        ["bash", "-c", command.replace("curl -s ", "curl -sS --fail-with-body ", 1)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, f"{example.command}\nexit {done.returncode}: {done.stdout}{done.stderr}"
    return done.stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="the docs' examples use curl: apt-get install curl")
@pytest.mark.parametrize("section", ["## 2. Serve one model"])  # with its Open Inference Protocol part
def test_serving_docs_examples_run_as_written(section: str, served_demo: ServeProcess) -> None:
    examples = [e for block in bash_blocks(section) for e in curl_examples(block) if "@" not in e.command]
    assert examples, f"no curl examples found under {section!r} in {DOCS}"  # the parser still finds them
    for example in examples:
        got = _run(example, served_demo.url)
        missing = [text for text in promised(example.answer) if text not in got]
        assert not missing, (
            f"{example.command}\nthe docs print {example.answer}\nthe server said {got}\nmissing {missing}"
        )
