"""The agent's view of the world: what should run, what runs, and what to do about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DesiredDeployment:
    id: str
    model_id: str
    active: bool = True
    name: str | None = None
    description: str | None = None
    model_format: str | None = None
    model_sha256: str | None = None
    key_values: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    # A local artifact path (file source) — the control plane source downloads instead.
    artifact_path: str | None = None


@dataclass(frozen=True)
class EnvironmentInfo:
    id: str
    name: str | None = None
    description: str | None = None
    platform: str = "local"
    plugin: str | None = None
    plugin_config: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    key_values: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    monitoring_enabled: bool = False
    created_at: str | None = None
    created_by: str | None = None


@dataclass(frozen=True)
class DesiredState:
    revision: int
    environment: EnvironmentInfo
    deployments: tuple[DesiredDeployment, ...]

    def by_id(self) -> dict[str, DesiredDeployment]:
        return {d.id: d for d in self.deployments}


@dataclass(frozen=True)
class ObservedDeployment:
    id: str
    state: str  # a DeploymentState value
    model_id: str | None = None
    prediction_url: str | None = None
    message: str | None = None
    old_model_in_use: bool = False


@dataclass(frozen=True)
class Action:
    kind: str  # a BosunPluginActions value
    deployment_id: str
    desired: DesiredDeployment | None
    observed: ObservedDeployment | None
    reason: str
