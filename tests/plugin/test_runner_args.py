"""The runner's fast flag parser gives argparse's answer, or leaves the command line to it."""

from __future__ import annotations

import itertools

import pytest

from deckhand.plugin.runner_args import OPTIONS, build_parser, parse, parse_simple

WELL_FORMED = [
    [],
    ["--plugin", "test", "--action", "plugin_start", "--config", "c.yaml", "--status-file", "s.yaml"],
    ["--plugin", "x.py", "--action", "a", "--config", "c", "--private-config", "p", "--status-file", "s"]
    + ["--show-status", "--dry-run", "--exit-codes", "--log-level", "debug", "--logfile", "l", "--log-config", "lc"],
    ["--list-actions"],
    ["--list-plugins", "--plugin", "p"],
    ["--gen-config"],
    ["--gen-config", "out.yaml", "--action", "deployment_start"],
    ["--gen-config", "--action", "deployment_start"],
    ["--gen-config", "-", "--action", "pe_status"],
    ["--plugin", "a", "--plugin", "b"],  # the last one wins
    ["--plugin", ""],
    ["--config", "with space.yaml"],
]
LEFT_TO_ARGPARSE = [
    ["--plug", "test"],  # an abbreviation
    ["--plugin=test"],
    ["--plugin"],
    ["--plugin", "--action", "x"],
    ["--log-level", "loud"],
    ["--plugin", "-1"],
    ["positional"],
    ["--", "x"],
    ["-h"],
]


@pytest.mark.parametrize("argv", WELL_FORMED, ids=lambda a: " ".join(a) or "(none)")
def test_well_formed_command_lines_parse_as_argparse_parses_them(argv):
    fast = parse_simple(argv)
    assert fast is not None
    assert vars(fast) == vars(build_parser().parse_args(argv))


@pytest.mark.parametrize("argv", LEFT_TO_ARGPARSE, ids=" ".join)
def test_anything_else_is_left_to_argparse(argv):
    assert parse_simple(argv) is None


def test_every_pair_of_flags_parses_as_argparse_parses_it():
    def words(flag: str, kind: str) -> list[str]:
        return {"value": ["info" if flag == "--log-level" else "v"], "optional value": [], "flag": []}[kind]

    for (a, kind_a, _), (b, kind_b, _) in itertools.product(OPTIONS, repeat=2):
        argv = [a, *words(a, kind_a), b, *words(b, kind_b)]
        assert vars(parse_simple(argv)) == vars(build_parser().parse_args(argv)), argv


def test_argparse_still_answers_what_the_fast_path_leaves(capsys):
    assert parse(["--plug", "test"], "bosun-plugin-runner").plugin == "test"
    with pytest.raises(SystemExit) as exited:
        parse(["--log-level", "LOUD"], "bosun-plugin-runner")
    assert exited.value.code == 2 and "invalid choice" in capsys.readouterr().err
