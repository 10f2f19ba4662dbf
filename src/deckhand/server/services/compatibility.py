"""Can a deployment's callers keep calling it after a model change? Compares the current
package with the new one: target type, class labels, and the features each takes.

A pure function of the two packages' metadata, so that replace and rollback share it and
tests call it without a database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deckhand.server.db.models import ModelPackage


@dataclass(frozen=True)
class Difference:
    """One way the new model differs: `field` names the manifest field, `message` says how."""

    field: str
    message: str

    def as_error(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message, "type": "incompatible"}


def _names(names: list[str]) -> str:
    return ", ".join(sorted(names))


def _feature_types(package: ModelPackage) -> dict[str, Any]:
    return {f["name"]: f.get("type", "numeric") for f in package.features or []}


def differences(current: ModelPackage, new: ModelPackage) -> list[Difference]:
    """What stops `new` from standing in for `current`; empty when it can."""
    found = []
    if current.target_type != new.target_type:
        found.append(
            Difference("targetType", f"the current model is {current.target_type}, the new one {new.target_type}")
        )
    if current.target_type != "regression" and new.target_type != "regression":
        old_labels, new_labels = set(current.class_labels or ()), set(new.class_labels or ())
        if old_labels != new_labels:
            parts = []
            if old_labels - new_labels:
                parts.append(f"the new model lacks {_names(list(old_labels - new_labels))}")
            if new_labels - old_labels:
                parts.append(f"it adds {_names(list(new_labels - old_labels))}")
            found.append(Difference("classLabels", "; ".join(parts)))
    old_features, new_features = _feature_types(current), _feature_types(new)
    if old_features and new_features:  # a package that declares none cannot be compared
        dropped = [name for name in old_features if name not in new_features]
        added = [name for name in new_features if name not in old_features]
        retyped = [
            f"{name} ({old_features[name]} -> {new_features[name]})"
            for name in old_features
            if name in new_features and old_features[name] != new_features[name]
        ]
        if dropped:
            found.append(Difference("features", f"the new model does not take {_names(dropped)}"))
        if added:
            found.append(
                Difference("features", f"the new model requires {_names(added)}, which the current one did not take")
            )
        if retyped:
            found.append(Difference("features", f"types changed: {', '.join(sorted(retyped))}"))
    return found
