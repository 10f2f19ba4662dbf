"""`bosun-plugin-runner` (also `deckhand plugin run`): run one plugin action and write
its status file — bosun's documented protocol, so the documented runner and ours are
interchangeable under the agent.

Start-up is part of every subprocess action, so this module imports only the standard
library at the top; YAML, the plugin and even `logging` are imported when needed. Logging
is configured once the plugin is loaded: if nothing imported `logging` by then (and no
--logfile/--log-config asks for it), nothing can log, and the import is skipped — a
plugin's `self._logger` still sets it up on first use.
"""

from __future__ import annotations

import sys

from deckhand.plugin.action_status import ActionStatus, ActionStatusInfo, failing_status
from deckhand.plugin.constants import ACTIONS
from deckhand.plugin.errors import ConfigError, PluginError
from deckhand.plugin.runner_args import parse

TYPE_CHECKING = False  # importing typing slows every runner start; only type checkers need it
if TYPE_CHECKING:
    from argparse import Namespace
    from collections.abc import Callable
    from typing import Any

# Usage errors exit 1, as the documented runner's do (argparse's own errors exit 2 in both).
EXIT_USAGE = 1
LOGGER_NAME = "deckhand.plugin.runner"


# The flags an action needs; without any of them the runner runs nothing (as documented).
REQUIRED_FOR_ACTION = ("--plugin", "--action", "--config", "--status-file")


def main(argv: list[str] | None = None, prog: str = "bosun-plugin-runner") -> int:
    args = parse(argv, prog)

    # The documented runner's order: --gen-config, then --list-plugins, then --list-actions.
    if args.gen_config is not None:
        return _gen_config(args)
    if args.list_plugins:
        from deckhand.plugin.loader import list_plugin_names

        print("\n".join(list_plugin_names()))
        return 0
    if args.list_actions:
        print("\n".join(ACTIONS))
        return 0

    missing = [flag for flag in REQUIRED_FOR_ACTION if not getattr(args, flag[2:].replace("-", "_"))]
    if missing:
        return _usage_error(
            f"missing {', '.join(missing)}: running an action needs {', '.join(REQUIRED_FOR_ACTION)} "
            "(or use --list-actions, --list-plugins, --gen-config)"
        )
    problem = _status_file_problem(args.status_file)
    if problem:
        return _usage_error(problem)

    # From here on every failure becomes a status file.
    status = run_action(
        args.plugin,
        args.action,
        config_path=args.config,
        private_config=args.private_config,
        dry_run=args.dry_run,
        setup_logging=lambda: _configure_logging(args),
    )
    return _finish(status, args)


def _usage_error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _status_file_problem(path: str) -> str | None:
    """Why the status file cannot be written, checked before the action runs: an action
    whose result cannot be recorded must not change anything."""
    import os

    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"--status-file {path}: directory {folder} does not exist; create it or choose another path"
    if os.path.isdir(path):
        return f"--status-file {path} is a directory; give a file path"
    return None


def run_action(
    plugin: str,
    action: str,
    *,
    config_path: str | None,
    private_config: str | None = None,
    dry_run: bool = False,
    setup_logging: Callable[[], None] | None = None,
) -> ActionStatusInfo:
    """Load the config and the plugin, set up logging, run the action; never raises."""
    try:
        from deckhand.plugin.action_config import load_action_config
        from deckhand.plugin.loader import load_plugin_class

        config = load_action_config(config_path, action)
        cls = load_plugin_class(plugin)
        if setup_logging is not None:
            setup_logging()  # after the plugin's imports: see the module docstring
        instance = cls(config.plugin_config, private_config, config.pe_info, dry_run)
    except PluginError as exc:
        return _failure(action, str(exc))
    except Exception as exc:
        _log().exception("plugin set-up failed")
        return _failure(action, f"setting up plugin {plugin!r} failed: {type(exc).__name__}: {exc}")
    if "logging" in sys.modules:
        _log().debug("running %s.%s", cls.__name__, action)
    return instance.invoke(action, config.deployment_info)


def _log() -> Any:
    import logging

    return logging.getLogger(LOGGER_NAME)


def _failure(action: str, message: str) -> ActionStatusInfo:
    from deckhand.secrets import mask

    return failing_status(action, mask(message))  # no action ran: duration stays null


def _finish(status: ActionStatusInfo, args: Namespace) -> int:
    from deckhand.fsutil import atomic_write_text
    from deckhand.secrets import mask

    text = mask(status.to_yaml())
    try:
        atomic_write_text(args.status_file, text)
    except OSError as exc:
        print(f"error: cannot write --status-file {args.status_file}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.show_status:
        sys.stdout.write("\n-- action status --\n" + text + "\n")
    if status.status != ActionStatus.OK:
        if "logging" in sys.modules:
            _log().warning("%s: %s: %s", args.action, status.status, status.msg)
        else:
            print(f"level=WARNING logger={LOGGER_NAME} {args.action}: {status.status}: {status.msg}", file=sys.stderr)
    return ActionStatus.to_numeric[status.status] if args.exit_codes else 0


def _gen_config(args: Namespace) -> int:
    from deckhand.plugin.action_config import template

    if not args.action:
        return _usage_error("--gen-config needs --action: say which action the config is for")
    if args.action not in ACTIONS:
        return _usage_error(f"--gen-config: {args.action!r} is not an action; use one of: {', '.join(ACTIONS)}")
    text = template(args.action, args.plugin)
    if args.gen_config == "-":
        sys.stdout.write(text)
        return 0
    from deckhand.fsutil import atomic_write_text

    try:
        atomic_write_text(args.gen_config, text)  # replaces an existing file, as documented
    except OSError as exc:
        return _usage_error(f"--gen-config: cannot write {args.gen_config}: {exc}")
    return 0


def _configure_logging(args: Namespace) -> None:
    """Route logs to stderr, --logfile or --log-config, masked; a bad setting is a ConfigError."""
    if not (args.log_config or args.logfile) and "logging" not in sys.modules:
        from deckhand.plugin import base

        base.on_first_logger = lambda: _apply_logging_settings(args)
        return
    try:
        _apply_logging_settings(args)
    except Exception as exc:
        raise ConfigError("--log-config/--logfile", str(exc)) from exc


def _apply_logging_settings(args: Namespace) -> None:
    import logging

    from deckhand.secrets import install_masking

    if args.log_config:
        path = args.log_config
        import logging.config as logging_config

        if path.endswith((".ini", ".conf", ".cfg")):
            logging_config.fileConfig(path, disable_existing_loggers=False)
        else:
            from deckhand.plugin.action_config import load_mapping_file

            settings = load_mapping_file(path, what="--log-config")
            settings.setdefault("disable_existing_loggers", False)
            logging_config.dictConfig(settings)
    else:
        handler: logging.Handler = (
            logging.FileHandler(args.logfile) if args.logfile else logging.StreamHandler(sys.stderr)
        )
        handler.setFormatter(logging.Formatter("%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"))
        root = logging.getLogger()
        root.handlers[:] = [handler]
        root.setLevel(args.log_level)
    install_masking()


if __name__ == "__main__":
    sys.exit(main())
