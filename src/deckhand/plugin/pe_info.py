"""PEInfo: the `peInfo` section (the prediction environment an action refers to)."""

from __future__ import annotations

from deckhand.plugin.constants import PeInfoConfigConstants
from deckhand.plugin.deployment_info import DeploymentInfo
from deckhand.plugin.errors import ConfigError, describe

TYPE_CHECKING = False  # importing typing slows every runner start; only type checkers need it
if TYPE_CHECKING:
    from typing import Any

SECTION = PeInfoConfigConstants.PE_INFO_KEY


class PEInfo:
    def __init__(self, pe_info: dict[str, Any]):
        if not isinstance(pe_info, dict):
            raise ConfigError(SECTION, f"expected a mapping, got {describe(pe_info)}")
        values = dict(pe_info)
        if values.get("id") is None:
            raise ConfigError(f"{SECTION}.id", "is missing", "set it to the environment's id")
        values["id"] = str(values["id"])
        raw = values.get("deployments") or []
        if not isinstance(raw, list):
            raise ConfigError(
                f"{SECTION}.deployments",
                f"expected a list of deployment ids or deploymentInfo mappings, got {describe(raw)}",
            )
        deployments = []
        for index, item in enumerate(raw):
            where = f"{SECTION}.deployments[{index}]"
            if isinstance(item, DeploymentInfo):
                deployments.append(item)
            elif isinstance(item, (str, int)) and not isinstance(item, bool):
                deployments.append(DeploymentInfo.from_id(str(item)))
            elif isinstance(item, dict):
                deployments.append(DeploymentInfo(item, section=where))
            else:
                raise ConfigError(where, f"expected a deployment id or a mapping, got {describe(item)}")
        kv = values.get("keyValueConfig")
        if kv is not None and not isinstance(kv, dict):
            raise ConfigError(f"{SECTION}.keyValueConfig", f"expected a mapping, got {describe(kv)}")
        self._pe_info = values
        self._deployments = deployments

    def to_dict(self) -> dict[str, Any]:
        values = dict(self._pe_info)
        values["deployments"] = [d.to_dict() for d in self._deployments]
        return values

    @property
    def id(self) -> str:
        return self._pe_info["id"]

    @property
    def name(self) -> str | None:
        return self._pe_info.get("name")

    @property
    def description(self) -> str | None:
        return self._pe_info.get("description")

    @property
    def created_on(self) -> str | None:
        return self._pe_info.get("createdOn")

    @property
    def created_by(self) -> str | None:
        return self._pe_info.get("createdBy")

    @property
    def deployments(self) -> list[DeploymentInfo]:
        return self._deployments

    @property
    def kv_config(self) -> dict[str, Any]:
        return self._pe_info.get("keyValueConfig") or {}
