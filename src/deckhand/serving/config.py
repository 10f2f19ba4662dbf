"""Settings of `deckhand serve` (one model from a package, or many from a models dir)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from deckhand.listener import ConnectionLimits
from deckhand.package_limits import PackageLimits
from deckhand.serving.batching import DEFAULT_MAX_BATCH_ROWS
from deckhand.serving.observers import MONITORING_ENV

CONFIG_ENV = "DECKHAND_SERVE_CONFIG"  # JSON of ServeConfig, for uvicorn worker processes
ADMIN_TOKEN_ENV = "DECKHAND_SERVE_ADMIN_TOKEN"
DEFAULT_MAX_BODY = 50 * 1024 * 1024
DEFAULT_MAX_ROWS = 1_000_000
DEFAULT_MAX_UPLOAD = 1024**3


class ServeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    package: Path | None = None
    models_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = Field(default=1, ge=1)
    # single-model mode
    deployment_id: str = "default"
    model_id: str | None = None
    # multi-model mode (deployment directories: deckhand.deployment_dirs)
    deployment_dir_prefix: str = ""
    info_file: str = "config.yml"
    poll_interval_s: float = Field(default=0.25, gt=0)
    # model changes (upload, delete): off unless admin_port is set; then only on that
    # listener, with the token whose sha256 this is (the config holds no secret)
    admin_host: str = "127.0.0.1"
    admin_port: int | None = Field(default=None, ge=0, le=65535)
    admin_token_sha256: str | None = Field(default=None, pattern="^[0-9a-f]{64}$")
    max_upload_bytes: int = Field(default=DEFAULT_MAX_UPLOAD, gt=0)
    # what loading or receiving one package may inflate (checked before inflating)
    package_limits: PackageLimits = Field(default_factory=PackageLimits)
    # request handling
    limits: ConnectionLimits = Field(default_factory=ConnectionLimits)
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY, gt=0)
    max_rows: int = Field(default=DEFAULT_MAX_ROWS, ge=1)
    # larger requests are scored and answered in chunks of this many rows (bounded memory)
    stream_chunk_rows: int = Field(default=10_000, ge=1)
    batching: bool = True
    max_batch_rows: int = Field(default=DEFAULT_MAX_BATCH_ROWS, ge=1)
    batch_wait_ms: float = Field(default=0.0, ge=0)
    inline_max_rows: int = Field(default=1000, ge=1)
    # challengers' copies: "idle" takes none while other requests wait for a model (they
    # never slow the champion), "all" copies every request the champion answers
    shadow_copies: Literal["idle", "all"] = "idle"
    # monitoring: a channel spec; None means "read DECKHAND_MONITORING"
    monitoring: str | None = None
    feature_sample_rows: int = Field(default=10, ge=0)
    log_level: str = "warning"

    @model_validator(mode="after")
    def _one_source(self) -> ServeConfig:
        if (self.package is None) == (self.models_dir is None):
            raise ValueError("give exactly one of --package FILE (one model) or --models-dir DIR (many)")
        if self.admin_port is not None:
            if self.models_dir is None:
                raise ValueError("--admin-port serves uploads and deletes of a --models-dir server; drop it")
            if self.admin_token_sha256 is None:
                raise ValueError(f"--admin-port needs a token: --admin-token-file FILE or ${ADMIN_TOKEN_ENV}")
        return self

    @property
    def multi_model(self) -> bool:
        return self.models_dir is not None

    def monitoring_spec(self) -> str | None:
        return self.monitoring if self.monitoring is not None else os.environ.get(MONITORING_ENV)
