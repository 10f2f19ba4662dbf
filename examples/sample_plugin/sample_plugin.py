"""A custom plugin written only against the documented bosun interface.

It "deploys" a model by recording it in a JSON inventory file whose path comes from the
private config — a stand-in for a custom prediction environment. It imports nothing
from deckhand: only the bosun.plugin.* paths the documentation names.

    bosun-plugin-runner --plugin examples/sample_plugin/sample_plugin.py \
        --action deployment_start \
        --config examples/sample_plugin/sample_configs/action_config_deployment_1_model_A.yaml \
        --private-config examples/sample_plugin/sample_configs/sample_plugin_config.yaml \
        --status-file /tmp/status.yaml --show-status
"""

import json
import os

import yaml

from bosun.plugin.action_status import ActionDataFields, ActionStatus, ActionStatusInfo
from bosun.plugin.bosun_plugin_base import BosunPluginBase
from bosun.plugin.constants import DeploymentState
from bosun.plugin.deployment_info import DeploymentInfo


class SamplePlugin(BosunPluginBase):
    def __init__(self, plugin_config, private_config_file=None, pe_info=None, dry_run=False):
        super().__init__(plugin_config, private_config_file, pe_info, dry_run)
        settings = {}
        if private_config_file:
            with open(private_config_file) as fh:
                settings = yaml.safe_load(fh) or {}
        self._inventory = settings.get("inventory_file", "/tmp/sample_plugin_inventory.json")
        self._max_models = int(settings.get("max_models", 5))

    def _load(self):
        if not os.path.exists(self._inventory):
            return {}
        with open(self._inventory) as fh:
            return json.load(fh)

    def _save(self, inventory):
        if self._dry_run:
            return
        tmp = self._inventory + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(inventory, fh)
        os.replace(tmp, self._inventory)

    def plugin_start(self):
        return ActionStatusInfo(ActionStatus.OK, msg=f"inventory at {self._inventory}")

    def plugin_stop(self):
        return ActionStatusInfo(ActionStatus.OK)

    def deployment_list(self):
        data = {
            dep_id: {
                "status": ActionStatus.OK,
                "state": DeploymentState.READY,
                "data": {ActionDataFields.CURRENT_MODEL_ID: model_id},
            }
            for dep_id, model_id in self._load().items()
        }
        return ActionStatusInfo(ActionStatus.OK, msg=f"{len(data)} deployments", data=data)

    def deployment_start(self, deployment_info: DeploymentInfo):
        inventory = self._load()
        if deployment_info.id not in inventory and len(inventory) >= self._max_models:
            return ActionStatusInfo(
                ActionStatus.ERROR, msg=f"max_models={self._max_models} reached", state=DeploymentState.ERROR
            )
        if not os.path.isfile(deployment_info.model_artifact):
            return ActionStatusInfo(
                ActionStatus.ERROR, msg=f"no artifact {deployment_info.model_artifact}", state=DeploymentState.ERROR
            )
        inventory[deployment_info.id] = deployment_info.model_id
        self._save(inventory)
        return ActionStatusInfo(
            ActionStatus.OK,
            state=DeploymentState.READY,
            data={ActionDataFields.PREDICTION_URL: f"http://sample.invalid/{deployment_info.id}/predict"},
        )

    def deployment_stop(self, deployment_id):
        inventory = self._load()
        inventory.pop(str(deployment_id), None)
        self._save(inventory)
        return ActionStatusInfo(ActionStatus.OK, state=DeploymentState.STOPPED)

    def deployment_replace_model(self, deployment_info: DeploymentInfo):
        inventory = self._load()
        inventory[deployment_info.id] = deployment_info.new_model_id or deployment_info.model_id
        self._save(inventory)
        return ActionStatusInfo(ActionStatus.OK, state=DeploymentState.READY)

    def pe_status(self):
        inventory = self._load()
        statuses = {
            d.id: {
                "status": ActionStatus.OK if d.id in inventory else ActionStatus.ERROR,
                "state": DeploymentState.READY if d.id in inventory else DeploymentState.STOPPED,
            }
            for d in (self._pe_info.deployments if self._pe_info else [])
        }
        return ActionStatusInfo(ActionStatus.OK, data={ActionDataFields.DEPLOYMENTS_STATUS: statuses})

    def deployment_status(self, deployment_info: DeploymentInfo):
        model_id = self._load().get(deployment_info.id)
        if model_id is None:
            return ActionStatusInfo(ActionStatus.OK, state=DeploymentState.STOPPED)
        return ActionStatusInfo(
            ActionStatus.OK, state=DeploymentState.READY, data={ActionDataFields.CURRENT_MODEL_ID: model_id}
        )
