"""Filesystem plugin settings (bosun's documented keys), from pluginConfig merged with the private config.

As with the documented plugin, every key but deploymentKVFile must be set (usually in the
--private-config file): a missing one is a failing status naming it, not a silent default
that would put deployments where nobody looks."""

from __future__ import annotations

from pathlib import Path

from deckhand.plugin.constants import BosunPluginConfigConstants
from deckhand.plugin.errors import ConfigError, describe

TYPE_CHECKING = False  # typing and dataclasses cost every runner start milliseconds
if TYPE_CHECKING:
    from typing import Any

BASE_DIR = "baseDir"
DIR_PREFIX = "deploymentDirPrefix"
INFO_FILE = "deploymentInfoFile"
PREDICTION_BASE_URL = "deploymentPredictionBaseUrl"
KV_FILE = "deploymentKVFile"

ENABLE_MONITORING = BosunPluginConfigConstants.MLOPS_BOSUN_PRED_ENV_ENABLE_MONITORING_KEY

# The keys that must be set, in the order messages name them; the agent sets
# ENABLE_MONITORING in every pluginConfig.
REQUIRED: tuple[str, ...] = (BASE_DIR, DIR_PREFIX, INFO_FILE, PREDICTION_BASE_URL, ENABLE_MONITORING)
OPTIONAL: dict[str, Any] = {KV_FILE: None}

# The documented example values (what `deckhand quickstart` and the docs use).
EXAMPLE: dict[str, Any] = {
    BASE_DIR: ".",
    DIR_PREFIX: "deployment_",
    INFO_FILE: "config.yml",
    PREDICTION_BASE_URL: "http://localhost:8080",
}


class FilesystemConfig:
    __slots__ = ("base_dir", "dir_prefix", "info_file", "prediction_base_url", "kv_file")

    def __init__(
        self, *, base_dir: Path, dir_prefix: str, info_file: str, prediction_base_url: str, kv_file: str | None
    ) -> None:
        self.base_dir = base_dir
        self.dir_prefix = dir_prefix
        self.info_file = info_file
        self.prediction_base_url = prediction_base_url
        self.kv_file = kv_file

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> FilesystemConfig:
        missing = [key for key in REQUIRED if values.get(key) is None]
        if missing:
            raise ConfigError(
                "filesystem plugin config",
                f"missing {', '.join(missing)}",
                "set them in the --private-config file (or pluginConfig); see docs/plugins.md",
            )
        if not isinstance(values[ENABLE_MONITORING], bool):
            raise ConfigError(ENABLE_MONITORING, f"expected true or false, got {describe(values[ENABLE_MONITORING])}")
        merged = {**OPTIONAL, **{k: v for k, v in values.items() if k in (*REQUIRED, *OPTIONAL)}}
        for key in (BASE_DIR, INFO_FILE, PREDICTION_BASE_URL):
            if not isinstance(merged[key], str) or not merged[key]:
                raise ConfigError(key, f"expected a non-empty string, got {describe(merged[key])}")
        if not isinstance(merged[DIR_PREFIX], str):
            raise ConfigError(DIR_PREFIX, f"expected a string, got {describe(merged[DIR_PREFIX])}")
        if "/" in merged[DIR_PREFIX] or ".." in merged[DIR_PREFIX] or merged[DIR_PREFIX].startswith("."):
            raise ConfigError(DIR_PREFIX, f"{merged[DIR_PREFIX]!r} must not contain '/' or '..' or start with '.'")
        for key in (INFO_FILE, KV_FILE):
            value = merged[key]
            if value is not None and (not isinstance(value, str) or "/" in value or value.startswith(".")):
                raise ConfigError(key, f"expected a plain file name, got {describe(value)}")
        return cls(
            base_dir=Path(merged[BASE_DIR]),
            dir_prefix=merged[DIR_PREFIX],
            info_file=merged[INFO_FILE],
            prediction_base_url=merged[PREDICTION_BASE_URL].rstrip("/"),
            kv_file=merged[KV_FILE],
        )

    def prediction_url(self, deployment_id: str) -> str:
        return f"{self.prediction_base_url}/deployments/{self.dir_prefix}{deployment_id}/predictions"
