"""Filesystem plugin settings (bosun's documented keys), from pluginConfig merged with the private config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deckhand.plugin.errors import ConfigError, describe

BASE_DIR = "baseDir"
DIR_PREFIX = "deploymentDirPrefix"
INFO_FILE = "deploymentInfoFile"
PREDICTION_BASE_URL = "deploymentPredictionBaseUrl"
KV_FILE = "deploymentKVFile"

DEFAULTS: dict[str, Any] = {
    BASE_DIR: ".",
    DIR_PREFIX: "deployment_",
    INFO_FILE: "config.yml",
    PREDICTION_BASE_URL: "http://localhost:8080",
    KV_FILE: None,
}


@dataclass(frozen=True)
class FilesystemConfig:
    base_dir: Path
    dir_prefix: str
    info_file: str
    prediction_base_url: str
    kv_file: str | None

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> FilesystemConfig:
        merged = {**DEFAULTS, **{k: v for k, v in values.items() if k in DEFAULTS}}
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
