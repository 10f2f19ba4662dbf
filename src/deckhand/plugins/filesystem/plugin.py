"""The filesystem plugin: one directory per deployment under baseDir, read by a
prediction server in multi-model mode (see deckhand.deployment_dirs for the crash-safe writes)."""

from __future__ import annotations

import os

from deckhand import deployment_dirs
from deckhand.plugin.action_status import ActionDataFields, ActionStatus, ActionStatusInfo, failing_status
from deckhand.plugin.base import BosunPluginBase
from deckhand.plugin.constants import BosunPluginActions, DeploymentState
from deckhand.plugin.deployment_info import DeploymentInfo
from deckhand.plugins.filesystem.config import FilesystemConfig

TYPE_CHECKING = False  # importing typing slows every runner start; only type checkers need it
if TYPE_CHECKING:
    from typing import Any


class FilesystemPlugin(BosunPluginBase):
    def __init__(self, plugin_config, private_config_file=None, pe_info=None, dry_run=False):
        super().__init__(plugin_config, private_config_file, pe_info, dry_run)
        self._plugin_config.update(self.read_private_config())
        self._config = FilesystemConfig.from_mapping(self._plugin_config)

    # ----- helpers -------------------------------------------------------------------
    def _dir_name(self, deployment_id: str) -> str:
        return deployment_dirs.check_dir_name(f"{self._config.dir_prefix}{deployment_id}")

    def _check_base_dir(self) -> ActionStatusInfo | None:
        base = self._config.base_dir
        if not base.exists():
            return ActionStatusInfo(
                ActionStatus.ERROR,
                msg=f"baseDir {base} does not exist; create it or point baseDir at an existing directory",
            )
        if not base.is_dir():
            return ActionStatusInfo(ActionStatus.ERROR, msg=f"baseDir {base} is not a directory")
        if not os.access(base, os.W_OK | os.X_OK):
            return ActionStatusInfo(ActionStatus.ERROR, msg=f"baseDir {base} is not writable")
        return None

    def _status_of(self, entry: deployment_dirs.DeploymentDir | deployment_dirs.LayoutError) -> ActionStatusInfo:
        if isinstance(entry, deployment_dirs.LayoutError):
            return failing_status(BosunPluginActions.DEPLOYMENT_STATUS, str(entry))
        return ActionStatusInfo(
            ActionStatus.OK,
            msg=None,  # nothing to say, as the documented plugin says nothing
            state=DeploymentState.READY,
            data={
                ActionDataFields.CURRENT_MODEL_ID: entry.model_id,
                ActionDataFields.PREDICTION_URL: self._config.prediction_url(entry.deployment_id),
            },
        )

    def _deployment_status(self, deployment_id: str) -> ActionStatusInfo:
        try:
            entry: deployment_dirs.DeploymentDir | deployment_dirs.LayoutError = deployment_dirs.read_deployment_dir(
                self._config.base_dir / self._dir_name(deployment_id), self._config.info_file
            )
        except deployment_dirs.LayoutError as exc:
            entry = exc
        return self._status_of(entry)

    # ----- actions ---------------------------------------------------------------------
    def plugin_start(self) -> ActionStatusInfo:
        problem = self._check_base_dir()
        if problem:
            return problem
        if not self._dry_run:
            removed = deployment_dirs.remove_stale_work(self._config.base_dir)
            if removed:
                self._logger.info("removed leftovers of interrupted work: %s", ", ".join(removed))
        return ActionStatusInfo(ActionStatus.OK, msg=f"baseDir {self._config.base_dir} is usable")

    def plugin_stop(self) -> ActionStatusInfo:
        return ActionStatusInfo(ActionStatus.OK, msg="nothing to tear down")

    def deployment_list(self) -> ActionStatusInfo:
        problem = self._check_base_dir()
        if problem:
            return problem
        entries = deployment_dirs.scan(self._config.base_dir, self._config.dir_prefix, self._config.info_file)
        data = {}
        for dir_name, entry in sorted(entries.items()):
            deployment_id = dir_name[len(self._config.dir_prefix) :]
            data[deployment_id] = self._status_of(entry).to_dict()
        return ActionStatusInfo(ActionStatus.OK, msg=f"{len(data)} deployment(s)", data=data)

    def deployment_start(self, deployment_info: DeploymentInfo) -> ActionStatusInfo:
        return self._install(deployment_info, replacing=False)

    def deployment_replace_model(self, deployment_info: DeploymentInfo) -> ActionStatusInfo:
        return self._install(deployment_info, replacing=True)

    def _install(self, di: DeploymentInfo, *, replacing: bool) -> ActionStatusInfo:
        problem = self._check_base_dir()
        if problem:
            problem.state = DeploymentState.ERROR
            return problem
        model_id = di.current_model_id
        try:
            dir_name = self._dir_name(di.id)
            if replacing and not (self._config.base_dir / dir_name).is_dir():
                # Replacing means a deployment runs: creating one here would start what the
                # control plane never asked to start (the documented plugin fails too).
                return failing_status(
                    BosunPluginActions.DEPLOYMENT_REPLACE_MODEL,
                    f"deployment {di.id} is not running (no directory {self._config.base_dir / dir_name}); "
                    "start it with deployment_start",
                )
            artifact = deployment_dirs.check_artifact(di.model_artifact)
        except deployment_dirs.LayoutError as exc:
            current = self._deployment_status(di.id) if replacing else None
            if current is not None and current.state == DeploymentState.READY:
                # The old model keeps serving; say so.
                return ActionStatusInfo(
                    ActionStatus.ERROR,
                    msg=f"model not replaced, {model_id} cannot be used: {exc}",
                    state=DeploymentState.READY,
                    data={**(current.data or {}), ActionDataFields.OLD_MODEL_IN_USE: True},
                )
            return failing_status(
                BosunPluginActions.DEPLOYMENT_REPLACE_MODEL if replacing else BosunPluginActions.DEPLOYMENT_START,
                str(exc),
            )
        url = self._config.prediction_url(di.id)
        target = self._config.base_dir / dir_name
        if self._dry_run:
            verb = "replace the model in" if target.exists() else "create"
            return ActionStatusInfo(
                ActionStatus.OK,
                msg=f"dry run: would {verb} {target} with {artifact} as model {model_id}",
                state=DeploymentState.READY if target.exists() else DeploymentState.STOPPED,
                data={ActionDataFields.PREDICTION_URL: url},
            )
        current = self._deployment_status(di.id)
        if (
            current.state == DeploymentState.READY
            and (current.data or {}).get(ActionDataFields.CURRENT_MODEL_ID) == model_id
            and not replacing
        ):
            return ActionStatusInfo(
                ActionStatus.OK,
                msg=f"already running model {model_id}",
                state=DeploymentState.READY,
                data={ActionDataFields.PREDICTION_URL: url, ActionDataFields.CURRENT_MODEL_ID: model_id},
            )
        entry = deployment_dirs.install(
            self._config.base_dir,
            dir_name,
            di.id,
            str(model_id),
            artifact,
            kv=di.kv_config,
            info_file=self._config.info_file,
            kv_file=self._config.kv_file,
        )
        return ActionStatusInfo(
            ActionStatus.OK,
            msg=f"model {entry.model_id} in place at {entry.path}",
            state=DeploymentState.READY,
            data={ActionDataFields.PREDICTION_URL: url, ActionDataFields.CURRENT_MODEL_ID: entry.model_id},
        )

    def deployment_stop(self, deployment_id: str) -> ActionStatusInfo:
        try:
            dir_name = self._dir_name(str(deployment_id))
        except deployment_dirs.LayoutError as exc:
            return failing_status(BosunPluginActions.DEPLOYMENT_STOP, str(exc))
        target = self._config.base_dir / dir_name
        if self._dry_run:
            verb = "remove" if target.exists() else "leave absent"
            return ActionStatusInfo(
                ActionStatus.OK, msg=f"dry run: would {verb} {target}", state=DeploymentState.STOPPED
            )
        try:
            existed = deployment_dirs.remove(self._config.base_dir, dir_name)
        except OSError as exc:
            return failing_status(BosunPluginActions.DEPLOYMENT_STOP, f"cannot remove {target}: {exc.strerror}")
        msg = f"removed {target}" if existed else f"{target} was already absent"
        return ActionStatusInfo(ActionStatus.OK, msg=msg, state=DeploymentState.STOPPED)

    def deployment_status(self, deployment_info: DeploymentInfo) -> ActionStatusInfo:
        try:
            return self._deployment_status(deployment_info.id)
        except deployment_dirs.LayoutError as exc:
            return failing_status(BosunPluginActions.DEPLOYMENT_STATUS, str(exc))

    def pe_status(self) -> ActionStatusInfo:
        problem = self._check_base_dir()
        if problem:
            return problem
        statuses: dict[str, Any] = {}
        broken = []
        for di in self._pe_info.deployments if self._pe_info else []:
            try:
                status = self._deployment_status(di.id)
                present = (self._config.base_dir / self._dir_name(di.id)).exists()
            except deployment_dirs.LayoutError as exc:
                status, present = failing_status(BosunPluginActions.DEPLOYMENT_STATUS, str(exc)), True
            statuses[di.id] = status.to_dict()
            # Not deployed is no fault of the environment; a directory it cannot serve is.
            if present and status.state != DeploymentState.READY:
                broken.append(di.id)
        data = {ActionDataFields.DEPLOYMENTS_STATUS: statuses}
        if broken:
            return ActionStatusInfo(
                ActionStatus.WARN,
                msg=f"{len(broken)} of {len(statuses)} deployment(s) present but not servable: "
                f"{', '.join(sorted(broken))}",
                data=data,
            )
        ready = sum(1 for s in statuses.values() if s["state"] == DeploymentState.READY)
        return ActionStatusInfo(
            ActionStatus.OK,
            msg=f"baseDir {self._config.base_dir} usable; {ready} of {len(statuses)} listed deployment(s) running",
            data=data,
        )
