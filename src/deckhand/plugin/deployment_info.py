"""DeploymentInfo: the `deploymentInfo` section of an action config, validated."""

from __future__ import annotations

from deckhand.plugin.constants import DeploymentInfoConfigConstants
from deckhand.plugin.errors import ConfigError, describe

TYPE_CHECKING = False  # importing typing slows every runner start; only type checkers need it
if TYPE_CHECKING:
    from typing import Any

SECTION = DeploymentInfoConfigConstants.DEPLOYMENT_INFO_KEY

_OPTIONAL_STRINGS = (
    "name",
    "description",
    "modelArtifact",
    "modelFormat",
    "modelExecutionType",
    "newModelId",
)


def _check_string(section: str, values: dict[str, Any], key: str, required: bool) -> None:
    value = values.get(key)
    if value is None:
        if required:
            raise ConfigError(f"{section}.{key}", "is missing", f"set {section}.{key} to a string")
        return
    if not isinstance(value, str) or (required and not value):
        raise ConfigError(f"{section}.{key}", f"expected a non-empty string, got {describe(value)}")


class DeploymentInfo:
    """Read-only view of one deployment's info; attribute names follow the documented SDK."""

    def __init__(self, deployment_info: dict[str, Any], *, section: str = SECTION):
        if not isinstance(deployment_info, dict):
            raise ConfigError(section, f"expected a mapping, got {describe(deployment_info)}")
        values = dict(deployment_info)
        # Ids are often numbers in hand-written YAML; they are strings in the protocol.
        for key in ("id", "modelId", "newModelId"):
            if isinstance(values.get(key), int) and not isinstance(values.get(key), bool):
                values[key] = str(values[key])
        _check_string(section, values, "id", required=True)
        _check_string(section, values, "modelId", required=False)
        for key in _OPTIONAL_STRINGS:
            _check_string(section, values, key, required=False)
        kv = values.get("keyValueConfig")
        if kv is None:
            values["keyValueConfig"] = {}
        elif not isinstance(kv, dict):
            raise ConfigError(f"{section}.keyValueConfig", f"expected a mapping, got {describe(kv)}")
        self._deployment_info = values

    @classmethod
    def from_id(cls, deployment_id: str) -> DeploymentInfo:
        return cls({"id": str(deployment_id)})

    def require_model(self) -> None:
        """Actions that deploy a model need its id and artifact path."""
        for key in ("modelId", "modelArtifact"):
            _check_string(SECTION, self._deployment_info, key, required=True)

    def to_dict(self) -> dict[str, Any]:
        return dict(self._deployment_info)

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), indent=4)

    def __str__(self) -> str:
        return self.to_yaml()

    def __repr__(self) -> str:
        return f"DeploymentInfo(id={self.id!r}, model_id={self.model_id!r})"

    @property
    def id(self) -> str:
        return self._deployment_info["id"]

    @property
    def name(self) -> str | None:
        return self._deployment_info.get("name")

    @property
    def description(self) -> str | None:
        return self._deployment_info.get("description")

    @property
    def model_id(self) -> str | None:
        return self._deployment_info.get("modelId")

    @property
    def model_artifact(self) -> str | None:
        return self._deployment_info.get("modelArtifact")

    @property
    def model_format(self) -> str | None:
        return self._deployment_info.get("modelFormat")

    @property
    def model_execution_type(self) -> str | None:
        return self._deployment_info.get("modelExecutionType")

    @property
    def kv_config(self) -> dict[str, Any]:
        return self._deployment_info["keyValueConfig"]

    @property
    def new_model_id(self) -> str | None:
        return self._deployment_info.get("newModelId")

    @property
    def current_model_id(self) -> str | None:
        """The model this deployment should run after the action: newModelId wins."""
        return self.new_model_id or self.model_id


class DeploymentRef(str):
    """What `deployment_stop` receives: the deployment id as a string (the protocol), which
    also answers DeploymentInfo's attributes, for plugins written as `deployment_stop(self,
    deployment_info)` against the documentation's wording."""

    _info: DeploymentInfo

    def __new__(cls, info: DeploymentInfo) -> DeploymentRef:
        ref = super().__new__(cls, info.id)
        ref._info = info
        return ref

    def __getattr__(self, name: str) -> Any:
        return getattr(self._info, name)
