"""BosunPluginBase: the abstract plugin interface of the documented SDK, plus `invoke`,
the one place where an action is called, timed, type-checked and made exception-safe
(used by the runner and by the agent's in-process driver)."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

from deckhand.plugin.action_status import ActionStatusInfo, failing_status
from deckhand.plugin.constants import ACTIONS, BosunPluginActions
from deckhand.plugin.deployment_info import DeploymentInfo, DeploymentRef
from deckhand.plugin.errors import ConfigError, PluginError, describe
from deckhand.plugin.pe_info import PEInfo
from deckhand.secrets import mask, mask_mapping

TYPE_CHECKING = False  # typing costs a runner subprocess ~3 ms; only type checkers need it here
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


# Called once before the first plugin logger is made: the runner sets it when it skipped
# configuring logging because nothing had imported it yet.
on_first_logger: Callable[[], None] | None = None


class BosunPluginBase(ABC):
    __logger: Any = None  # see _logger

    def __init__(
        self,
        plugin_config: dict[str, Any] | None,
        private_config_file: str | None = None,
        pe_info: PEInfo | dict[str, Any] | None = None,
        dry_run: bool = False,
    ):
        self._plugin_config: dict[str, Any] = dict(plugin_config or {})
        self._private_config_file = private_config_file
        self._pe_info: PEInfo | None = pe_info if isinstance(pe_info, PEInfo) or pe_info is None else PEInfo(pe_info)
        self._dry_run = dry_run

    @property
    def _logger(self) -> Any:
        """The plugin's logger (`self._logger`, as in the documented SDK), made on first use so
        that a runner subprocess whose plugin never logs does not import logging."""
        if self.__logger is None:
            global on_first_logger
            if on_first_logger is not None:
                setup, on_first_logger = on_first_logger, None
                setup()
            import logging

            self.__logger = logging.getLogger(f"{type(self).__module__}.{type(self).__name__}")
        return self.__logger

    @_logger.setter
    def _logger(self, logger: Any) -> None:
        self.__logger = logger

    # ----- the documented interface -------------------------------------------------
    @abstractmethod
    def plugin_start(self) -> ActionStatusInfo: ...

    @abstractmethod
    def plugin_stop(self) -> ActionStatusInfo: ...

    @abstractmethod
    def deployment_list(self) -> ActionStatusInfo: ...

    @abstractmethod
    def deployment_start(self, deployment_info: DeploymentInfo) -> ActionStatusInfo: ...

    @abstractmethod
    def deployment_stop(self, deployment_id: str) -> ActionStatusInfo: ...

    @abstractmethod
    def deployment_replace_model(self, deployment_info: DeploymentInfo) -> ActionStatusInfo: ...

    @abstractmethod
    def pe_status(self) -> ActionStatusInfo: ...

    @abstractmethod
    def deployment_status(self, deployment_info: DeploymentInfo) -> ActionStatusInfo: ...

    def deployment_relaunch(self, deployment_info: DeploymentInfo) -> ActionStatusInfo:
        """Stop, then start, whatever stop returned."""
        stop_status = self.deployment_stop(DeploymentRef(deployment_info))
        self._logger.info("relaunch: stop returned %s", getattr(stop_status, "status", stop_status))
        return self.deployment_start(deployment_info)

    # ----- helpers for plugin authors ------------------------------------------------
    @property
    def plugin_config(self) -> dict[str, Any]:
        return self._plugin_config

    @property
    def pe_info(self) -> PEInfo | None:
        return self._pe_info

    @property
    def dry_run(self) -> bool:
        return self._dry_run

    @staticmethod
    def get_sanitized_config(config: dict[str, Any]) -> dict[str, Any]:
        return mask_mapping(config)

    def read_private_config(self) -> dict[str, Any]:
        """The --private-config file as a mapping (YAML or JSON); {} when none was given."""
        if not self._private_config_file:
            return {}
        from deckhand.plugin.action_config import load_mapping_file

        return load_mapping_file(self._private_config_file, what="private config")

    # ----- calling an action ---------------------------------------------------------
    def invoke(self, action: str, deployment_info: DeploymentInfo | None = None) -> ActionStatusInfo:
        """Run one action and always return an ActionStatusInfo with its duration."""
        started = time.monotonic()
        try:
            result = self._dispatch(action, deployment_info)
            if not isinstance(result, ActionStatusInfo):
                result = failing_status(
                    action,
                    f"plugin {type(self).__name__}.{action} returned {describe(result)}; expected an ActionStatusInfo",
                )
        except PluginError as exc:
            result = failing_status(action, mask(str(exc)))
        except Exception as exc:  # a plugin bug must become a status, never a crash
            self._logger.exception("action %s raised", action)
            result = failing_status(action, mask(f"{action} raised {type(exc).__name__}: {exc}"))
        if result.duration is None:
            result.duration = round(time.monotonic() - started, 6)
        return result

    def _dispatch(self, action: str, deployment_info: DeploymentInfo | None) -> Any:
        if action not in ACTIONS:
            raise ConfigError("action", f"unknown action {action!r}", f"use one of {', '.join(ACTIONS)}")
        method = getattr(self, action)
        if action in (BosunPluginActions.DEPLOYMENT_STOP,):
            assert deployment_info is not None
            return method(DeploymentRef(deployment_info))
        if deployment_info is not None and action not in (
            BosunPluginActions.PLUGIN_START,
            BosunPluginActions.PLUGIN_STOP,
            BosunPluginActions.DEPLOYMENT_LIST,
            BosunPluginActions.PE_STATUS,
        ):
            return method(deployment_info)
        return method()
