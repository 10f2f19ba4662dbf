"""The manifest of a model package: what the model is, what it expects, where it came from.

The manifest is the one description of a package that the control plane, the agent and
the prediction server share; `read_manifest` returns it after checking the package.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MANIFEST_VERSION = 1

ModelFormat = Literal["sklearn", "onnx", "mlflow", "python"]
TargetType = Literal["regression", "binary", "multiclass"]
FeatureType = Literal["numeric", "categorical"]

MODEL_FORMATS: tuple[str, ...] = ("sklearn", "onnx", "mlflow", "python")
TARGET_TYPES: tuple[str, ...] = ("regression", "binary", "multiclass")


class Feature(BaseModel):
    """One input column the model expects."""

    model_config = ConfigDict(extra="forbid")

    name: str
    type: FeatureType = "numeric"


class NumericSummary(BaseModel):
    """Histogram of a numeric feature in the training data: len(counts) == len(edges) - 1.

    `missing` counts empty / NaN values, which fall in no bin.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["numeric"] = "numeric"
    edges: list[float]
    counts: list[int]
    missing: int = 0

    @model_validator(mode="after")
    def _bins_match_edges(self) -> NumericSummary:
        if len(self.edges) != len(self.counts) + 1:
            raise ValueError(
                f"numeric summary has {len(self.edges)} edges and {len(self.counts)} counts; "
                "expected exactly one more edge than counts"
            )
        return self


class CategoricalSummary(BaseModel):
    """Value counts of a categorical feature in the training data (rare values pooled)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["categorical"] = "categorical"
    counts: dict[str, int]
    other: int = 0
    missing: int = 0


class TrainingSummary(BaseModel):
    """Per-feature baseline of the training data, used to measure drift."""

    model_config = ConfigDict(extra="forbid")

    rows: int
    features: dict[str, NumericSummary | CategoricalSummary]


class Manifest(BaseModel):
    """What `manifest.json` inside a package holds."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    manifest_version: int = MANIFEST_VERSION
    name: str
    format: ModelFormat
    target_type: TargetType
    class_labels: list[str] | None = None
    features: list[Feature] = Field(default_factory=list)
    library_versions: dict[str, str] = Field(default_factory=dict)
    payload_sha256: str
    payload_files: list[str] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    training_summary: TrainingSummary | None = None

    @model_validator(mode="after")
    def _labels_fit_target(self) -> Manifest:
        if self.target_type == "regression":
            if self.class_labels:
                raise ValueError("class_labels must be empty for a regression model")
        else:
            labels = self.class_labels or []
            if self.target_type == "binary" and len(labels) != 2:
                raise ValueError(
                    f"a binary model needs exactly 2 class_labels, found {labels!r}; "
                    "pass them with --class-labels NEG,POS"
                )
            if self.target_type == "multiclass" and len(labels) < 3:
                raise ValueError(
                    f"a multiclass model needs 3 or more class_labels, found {labels!r}; "
                    "pass them with --class-labels A,B,C (or use --target-type binary)"
                )
        return self

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]
