"""agent.yaml: the control plane to follow and the prediction environments to manage."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class EnvironmentSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str = Field(description="prediction environment id (or name) in the control plane")
    command: str | None = Field(None, description="runner command prefix; plugin runs as a subprocess")
    plugin: str | None = Field(None, description="override the environment's plugin (built-in, module, path)")
    private_config: str | None = Field(None, alias="privateConfig")
    plugin_config: dict[str, Any] = Field(default_factory=dict, alias="pluginConfig")


class AgentSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    url: str | None = Field(None, description="control plane URL (or DECKHAND_URL)")
    token: str | None = Field(None, description="agent API token (or DECKHAND_TOKEN / tokenFile)")
    token_file: str | None = Field(None, alias="tokenFile")
    work_dir: Path = Field(Path("~/.local/share/deckhand/agent"), alias="workDir")
    environments: list[EnvironmentSettings] = Field(default_factory=list)
    parallelism: int = Field(4, ge=1, le=256)
    action_timeout: float = Field(300.0, alias="actionTimeoutSeconds", gt=0)
    resync_interval: float = Field(10.0, alias="resyncIntervalSeconds", gt=0)
    long_poll_timeout: float = Field(30.0, alias="longPollSeconds", gt=0, le=60)
    retry_base: float = Field(1.0, alias="retryBaseSeconds", gt=0)
    retry_max: float = Field(60.0, alias="retryMaxSeconds", gt=0)
    server_workers: int = Field(1, alias="predictionServerWorkers", ge=1)
    # On stop, plugin threads (which cannot be killed) get this long to return.
    shutdown_grace: float = Field(10.0, alias="shutdownGraceSeconds", gt=0)

    @field_validator("work_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return Path(os.path.expanduser(str(value)))

    def resolved_token(self) -> str | None:
        if self.token:
            return self.token
        if self.token_file:
            return Path(self.token_file).read_text().strip()
        return os.environ.get("DECKHAND_TOKEN")

    def resolved_url(self) -> str | None:
        return self.url or os.environ.get("DECKHAND_URL")


def load_settings(path: Path) -> AgentSettings:
    from deckhand.plugin.action_config import load_mapping_file
    from deckhand.plugin.errors import ConfigError

    raw = load_mapping_file(str(path), what="--config")
    try:
        return AgentSettings.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {field}", first["msg"]) from None
