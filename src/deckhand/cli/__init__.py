"""The `deckhand` command.

`deckhand plugin run ...` is dispatched before typer is imported: it is the same lean
runner as `bosun-plugin-runner`, whose start-up time is part of every agent action.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int | None:
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:2] == ["plugin", "run"]:
        from deckhand.plugin.runner import main as run_plugin

        return run_plugin(args[2:], prog="deckhand plugin run")

    from deckhand.cli.app import build_app

    return build_app()(args=args, prog_name="deckhand")
