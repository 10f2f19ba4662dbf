"""The runner's command-line flags, defined once in OPTIONS.

`parse` reads a well-formed command line (every flag spelled out, each value its own
word) without argparse: importing argparse, building the parser and its gettext lookups
are about 7 ms of every subprocess action. Anything else — -h, an abbreviation,
`--flag=value`, a missing value, an unknown flag, a bad --log-level — goes to argparse,
whose help and errors (exit 2) stay those of the documented runner. tests/plugin/
test_runner_args.py checks that both give the same answer.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

TYPE_CHECKING = False  # importing typing slows every runner start; only type checkers need it
if TYPE_CHECKING:
    from argparse import ArgumentParser
    from typing import Any

VALUE, FLAG, OPTIONAL_VALUE = "value", "flag", "optional value"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
GEN_CONFIG_STDOUT = "-"  # --gen-config without FILE

# (flag, kind, help); argparse details beyond these are in build_parser.
OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("--plugin", VALUE, "built-in name, module name, or path to a .py file"),
    ("--action", VALUE, "the action to run (see --list-actions)"),
    ("--config", VALUE, "action config YAML (pluginConfig, peInfo, deploymentInfo)"),
    ("--private-config", VALUE, "plugin-specific config file (YAML or JSON)"),
    ("--status-file", VALUE, "where to write the action's status YAML"),
    ("--show-status", FLAG, "print the status to stdout"),
    ("--list-actions", FLAG, "list the actions and exit"),
    ("--list-plugins", FLAG, "list available plugins and exit"),
    ("--gen-config", OPTIONAL_VALUE, "write a ready-to-edit action config for --action to FILE (stdout if omitted)"),
    ("--dry-run", FLAG, "report what would be done, change nothing"),
    ("--exit-codes", FLAG, "exit with the status: passing 0, failing 1, warning 2, unknown 3"),
    ("--log-level", VALUE, "log level (default INFO)"),
    ("--logfile", VALUE, "write logs to this file instead of stderr"),
    ("--log-config", VALUE, "logging config file (YAML/JSON dictConfig, or INI)"),
)
_KINDS = {flag: kind for flag, kind, _ in OPTIONS}


def dest(flag: str) -> str:
    return flag[2:].replace("-", "_")


def defaults() -> dict[str, Any]:
    values: dict[str, Any] = {dest(flag): (False if kind == FLAG else None) for flag, kind, _ in OPTIONS}
    values["log_level"] = "INFO"
    return values


def parse(argv: list[str] | None, prog: str) -> Any:
    """The parsed flags (attribute access, as argparse's Namespace); argparse's own answer
    — or its exit — for anything `parse_simple` leaves to it."""
    argv = sys.argv[1:] if argv is None else list(argv)
    simple = parse_simple(argv)
    return simple if simple is not None else build_parser(prog).parse_args(argv)


def parse_simple(argv: list[str]) -> SimpleNamespace | None:
    """What argparse would answer for a well-formed command line; None for any other."""
    values = defaults()
    i = 0
    while i < len(argv):
        kind = _KINDS.get(argv[i])
        if kind is None:
            return None
        name = dest(argv[i])
        has_value = i + 1 < len(argv) and not _looks_like_flag(argv[i + 1])
        if kind == FLAG:
            values[name], i = True, i + 1
        elif kind == VALUE:
            if not has_value:
                return None
            values[name], i = argv[i + 1], i + 2
        else:
            values[name], i = (argv[i + 1], i + 2) if has_value else (GEN_CONFIG_STDOUT, i + 1)
    values["log_level"] = values["log_level"].upper()
    if values["log_level"] not in LOG_LEVELS:
        return None
    return SimpleNamespace(**values)


def _looks_like_flag(word: str) -> bool:
    # As argparse: a word starting with '-' is an option, except '-' alone (negative
    # numbers, which argparse may take as values, are left to it too).
    return word.startswith("-") and word != "-"


def build_parser(prog: str = "bosun-plugin-runner") -> ArgumentParser:
    import argparse

    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run one action of a management-agent plugin and write its status file.",
        formatter_class=_help_formatter(argparse),
    )
    for flag, kind, text in OPTIONS:
        if kind == FLAG:
            parser.add_argument(flag, action="store_true", help=text)
        elif kind == OPTIONAL_VALUE:
            parser.add_argument(flag, nargs="?", const=GEN_CONFIG_STDOUT, metavar="FILE", help=text)
        elif flag == "--log-level":
            parser.add_argument(flag, default="INFO", type=str.upper, choices=LOG_LEVELS, help=text)
        else:
            parser.add_argument(flag, help=text)
    return parser


def _help_formatter(argparse: Any) -> Any:
    class HelpFormatter(argparse.HelpFormatter):
        """argparse's default asks shutil for the terminal width; importing shutil (and the
        compression modules it pulls in) costs milliseconds. os.get_terminal_size answers."""

        def __init__(self, prog: str, **kwargs: Any):
            if kwargs.get("width") is None:
                import os

                try:
                    columns = int(os.environ.get("COLUMNS") or os.get_terminal_size(sys.stdout.fileno()).columns)
                except (OSError, ValueError):
                    columns = 80
                kwargs["width"] = columns - 2
            super().__init__(prog, **kwargs)

    return HelpFormatter
