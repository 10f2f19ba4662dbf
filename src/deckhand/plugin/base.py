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

TYPE_CHECKING = False  # importing typing slows every runner start; only type checkers need it
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


# Called once before the first plugin logger is made: the runner sets it when it skipped
# configuring logging because nothing had imported it yet.
on_first_logger: Callable[[], None] | None = None


class BosunPluginBase(ABC):
    """A prediction environment as the agent drives it: one method per action.

    What holds for every action (each method's docstring adds its own):

    - **Returns** an ActionStatusInfo: `status` passing, warning, failing or unknown; `msg`
      one line a person can act on (it reaches the control plane, events and the UI);
      for an action about one deployment, `state` is that deployment's state afterwards
      (DeploymentState: ready, stopped, errored, or launching / replacingModel /
      shuttingDown while the plugin is still at work) and `data` may carry the
      ActionDataFields keys (predictionUrl, currentModelId, oldModelInUse). Anything else
      returned, and any exception raised, becomes a failing status in `invoke` (see
      `failing_status` for its `state`): raise a PluginError (ConfigError, ...) whose text
      says what is wrong and what to do, and it is the message as it stands.
    - **Blocking**: an action may block until its work is done, for at most the agent's
      `actionTimeoutSeconds` (300 s unless configured). Past it, a plugin run through the
      runner is killed with its process group; one run in process cannot be killed, so its
      thread keeps the deployment (no other action on it) until it returns, and its late
      result is recorded. A killed action counts as failed and is retried after a backoff.
    - **Idempotent**: every action may be called again with the same input — after a
      failure, a timeout, a kill, or an agent restart (a SIGKILLed agent runs no
      plugin_stop) — and must then converge on the same result, finishing or clearing up
      whatever an interrupted earlier call left behind.
    - **Concurrency**: each action runs on a fresh instance (a thread of its own in
      process, a process of its own through the runner), so nothing kept on `self`
      survives to the next action: what the plugin must remember lives in the environment
      (container labels, directories). There is at most one action at a time per
      deployment; actions on different deployments run at once (up to the agent's
      `parallelism`), and deployment_list and pe_status may run while they do.
      Environment-level actions (plugin_start, plugin_stop, deployment_list, pe_status)
      run one at a time.
    - **Dry run** (`self.dry_run`): change nothing, and say in `msg` what would be done.
    """

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
    def plugin_start(self) -> ActionStatusInfo:
        """Get the environment ready, and say whether it is usable.

        Called when the agent starts the environment, before any other action; typically
        once per agent run, but again after every agent restart, so it must be idempotent
        (what it sets up may already be there; leftovers of interrupted work are cleared
        here). It may check that the environment is reachable (the Docker engine, the
        cluster, baseDir) and set up what every deployment shares (a network, a proxy),
        blocking until that is done, within the action timeout.

        Returns passing when the environment is usable, else failing with what to fix;
        `state` None. The agent reports the result as the environment's status and goes
        on: deployments are still started, and the next pe_status replaces that status.
        """

    @abstractmethod
    def plugin_stop(self) -> ActionStatusInfo:
        """Tear down what the plugin holds for this agent run (connections, shared pieces no
        deployment uses any more).

        Called once when the agent stops, after every deployment action has ended (or was
        left behind past `shutdownGraceSeconds`); not called at all when the agent is
        killed. It must not stop deployments: they keep serving while no agent runs, and
        the next agent adopts them through deployment_list. Idempotent: nothing left to
        tear down is success. May block, within the action timeout, but keep it short:
        `deckhand agent` is expected to stop within 2 s of SIGTERM (docs/agent.md).

        Returns passing (or failing with what was left behind); `state` None.
        """

    @abstractmethod
    def deployment_list(self) -> ActionStatusInfo:
        """Every deployment present in the environment, as the environment says it is.

        Called at start-up and then every `resyncIntervalSeconds` (10 s); the agent plans
        from it, so it must list deployments the agent does not know (a deleted one is then
        stopped) and must not change anything. Read-only, hence idempotent; it should
        answer in seconds — it runs while deployment actions are under way.

        Returns passing with `data` = {deployment id: status dict} (an ActionStatusInfo's
        `to_dict()` per deployment: its `state`, `msg` and `data` with currentModelId and
        predictionUrl); an empty mapping when there is none. Anything but passing with a
        mapping leaves the agent with what it knew, and the status is reported as the
        environment's.
        """

    @abstractmethod
    def deployment_start(self, deployment_info: DeploymentInfo) -> ActionStatusInfo:
        """Make `deployment_info.id` serve model `current_model_id` from the package at
        `model_artifact` (a local path the agent has filled before the call).

        Called when a deployment is created or activated and the environment does not
        run it. Blocks until the model serves (or has clearly failed), within the action
        timeout; a platform that takes longer may return early with `state` launching and
        the agent follows the deployment through deployment_list. Idempotent: a deployment
        already serving this model is left alone and reported ready; pieces left by an
        interrupted earlier start are reused or replaced, never doubled.

        Returns passing with `state` ready and `data` {predictionUrl, currentModelId};
        failing with `state` errored (the agent relaunches it after a backoff).
        """

    @abstractmethod
    def deployment_stop(self, deployment_id: str) -> ActionStatusInfo:
        """Stop serving deployment `deployment_id` and remove what deployment_start made.

        `deployment_id` is the id as a string (the protocol); it also answers
        DeploymentInfo's attributes, for plugins written against the documentation's
        `deployment_stop(self, deployment_info)`. Called when a deployment is deleted or
        deactivated, or one the agent does not know is found. Blocks until the deployment
        no longer serves, within the action timeout. Idempotent: a deployment that is
        already gone is success.

        Returns passing with `state` stopped; failing with `state` errored when something
        could not be removed (the agent tries again).
        """

    @abstractmethod
    def deployment_replace_model(self, deployment_info: DeploymentInfo) -> ActionStatusInfo:
        """Make running deployment `deployment_info.id` serve model `current_model_id`
        (newModelId, else modelId) from the package at `model_artifact`.

        Called when the deployment should run another model than the one it serves.
        Blocks until the new model serves, within the action timeout; the old model should
        keep answering until then where the platform allows. Idempotent: a deployment
        already serving this model is success.

        Returns passing with `state` ready and `data` {predictionUrl, currentModelId}. When
        the new model cannot serve but the old one still does, failing with `state` ready
        and `data` {oldModelInUse: true, currentModelId: the old model}; otherwise failing
        with `state` errored.
        """

    @abstractmethod
    def pe_status(self) -> ActionStatusInfo:
        """The health of the environment, and of the deployments it should run.

        Called by the agent after each deployment_list that passed. `self.pe_info.deployments`
        holds the deployments the agent expects to be active. Read-only, hence idempotent;
        it should answer in seconds.

        Returns passing (usable, every listed deployment ready), warning (usable, some not
        ready) or failing (not usable, with what to fix); `state` None. `data` may hold
        {deploymentsStatus: {deployment id: status dict}} for the listed deployments. The
        agent reports it as the environment's status.
        """

    @abstractmethod
    def deployment_status(self, deployment_info: DeploymentInfo) -> ActionStatusInfo:
        """The state of deployment `deployment_info.id`, as the environment says it is.

        Read-only, hence idempotent; it should answer in seconds. The agent learns states
        through deployment_list; this is for the runner and for other callers asking about
        one deployment.

        Returns passing with `state` ready (and `data` {predictionUrl, currentModelId}) or
        stopped (no such deployment); warning or passing with `state` launching while it
        comes up; failing with `state` errored and why.
        """

    def deployment_relaunch(self, deployment_info: DeploymentInfo) -> ActionStatusInfo:
        """Bring errored deployment `deployment_info.id` back, serving model
        `current_model_id` from `model_artifact`.

        Called when a deployment the agent should run is errored. This default stops it,
        then starts it whatever the stop returned, and returns the start's result; a plugin
        with a better way (restarting a container in place) overrides it. Blocks and must
        be idempotent as deployment_start does; returns what deployment_start returns.
        """
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
