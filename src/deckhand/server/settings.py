"""Configuration of the control plane, one place for every setting and its default."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from deckhand.package_limits import PackageLimits

BOOTSTRAP_TOKEN_ENV = "DECKHAND_BOOTSTRAP_TOKEN"
MIN_BOOTSTRAP_TOKEN_LENGTH = 24
EXAMPLE_TOKEN_WORDS = ("change-me", "changeme", "replace-me", "example", "your-token")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
# The standard AWS variables an s3:// artifact store reads, most specific first.
S3_ENDPOINT_ENVS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
S3_REGION_ENVS = ("AWS_REGION", "AWS_DEFAULT_REGION")


def _first_env(*names: str) -> str | None:
    return next((os.environ[n] for n in names if os.environ.get(n)), None)


class ServerSettings(BaseModel):
    """Settings of one control-plane process.

    `database_url` defaults to an SQLite file in `data_dir`; model package artifacts are
    stored under `data_dir/artifacts` whatever the database, unless `artifact_store` names
    another directory or an `s3://bucket/prefix` (services.artifacts).
    """

    model_config = ConfigDict(extra="forbid")

    data_dir: Path = Field(default_factory=lambda: Path("deckhand-data"))
    database_url: str | None = None
    # A directory or s3://bucket/prefix (`deckhand server --artifact-store`); None: artifacts_dir.
    artifact_store: str | None = None
    # For an s3:// store; None: the standard AWS variables (below), else boto3's own defaults.
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    host: str = DEFAULT_HOST
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    bootstrap_token: str | None = Field(
        default_factory=lambda: os.environ.get(BOOTSTRAP_TOKEN_ENV) or None, validate_default=True
    )
    long_poll_default_seconds: float = 30.0
    long_poll_max_seconds: float = 60.0
    # How often a waiting long poll re-reads the revision from the database: the safety net
    # for a change whose wake-up was lost (`deckhand server --long-poll-recheck-seconds`).
    long_poll_recheck_seconds: float = Field(default=2.0, gt=0, le=3600)
    # How often the rollout controller judges the canaries whose step has lasted its interval.
    rollout_tick_seconds: float = Field(default=5.0, gt=0, le=3600)
    # How often the notification policies are evaluated (`deckhand server --notify-tick-seconds`).
    notify_tick_seconds: float = Field(default=30.0, gt=0, le=3600)
    max_upload_bytes: int = 4 * 1024**3
    # The body of one actuals upload (`deckhand server --max-actuals-mb`).
    max_actuals_bytes: int = Field(default=64 * 1024**2, gt=0)
    # What reading an uploaded package may inflate (`deckhand server --max-package-*`).
    package_limits: PackageLimits = Field(default_factory=PackageLimits)

    @field_validator("bootstrap_token")
    @classmethod
    def _strong_bootstrap_token(cls, token: str | None) -> str | None:
        """An admin token must be a secret: long, and not one printed in some example."""
        if token is None:
            return None
        lowered = token.lower()
        problem = None
        if len(token) < MIN_BOOTSTRAP_TOKEN_LENGTH:
            problem = f"has {len(token)} characters, fewer than {MIN_BOOTSTRAP_TOKEN_LENGTH}"
        elif any(word in lowered for word in EXAMPLE_TOKEN_WORDS):
            problem = "looks like an example from documentation"
        if problem:
            raise ValueError(
                f"{BOOTSTRAP_TOKEN_ENV} {problem}; generate one with "
                """python -c 'import secrets; print("dh_" + secrets.token_urlsafe(32))'"""
            )
        return token

    @field_validator("artifact_store")
    @classmethod
    def _known_artifact_store(cls, spec: str | None) -> str | None:
        from deckhand.server.services.artifacts import check_store_spec

        return check_store_spec(spec)

    @model_validator(mode="after")
    def _default_database(self) -> ServerSettings:
        self.data_dir = Path(self.data_dir).expanduser().resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'deckhand.db'}"
        # Resolved here, not left to boto3, so the startup log can name the endpoint in use.
        self.s3_endpoint_url = self.s3_endpoint_url or _first_env(*S3_ENDPOINT_ENVS)
        self.s3_region = self.s3_region or _first_env(*S3_REGION_ENVS)
        return self

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"
