"""build_package: turn a model file or directory into a verified one-file package."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from deckhand.packages.container import payload_digest, write_package
from deckhand.packages.errors import PackageError
from deckhand.packages.formats import format_module
from deckhand.packages.formats.base import BuiltPayload
from deckhand.packages.manifest import TARGET_TYPES, Feature, Manifest
from deckhand.packages.summary import infer_features, read_training_csv, summarize

if TYPE_CHECKING:
    import pandas as pd

_GENERIC_NAME = re.compile(r"^f\d+$")


def _resolve_features(found: list[Feature] | None, frame: pd.DataFrame | None) -> list[Feature]:
    """Features the model declares, typed and (for unnamed inputs) named by the training data."""
    if frame is None:
        return found or []
    from_data = infer_features(frame)
    if not found:
        return from_data
    if all(_GENERIC_NAME.match(f.name) for f in found):
        if len(from_data) != len(found):
            raise PackageError(
                f"the model takes {len(found)} unnamed inputs but the training data has "
                f"{len(from_data)} columns; give a CSV holding exactly the model's feature "
                "columns, in order, so they can be named"
            )
        return from_data
    types = {f.name: f.type for f in from_data}
    return [Feature(name=f.name, type=types.get(f.name, f.type)) for f in found]


def _resolve_target(
    built: BuiltPayload, target_type: str | None, class_labels: list[str] | None
) -> tuple[str, list[str] | None]:
    if target_type is not None and target_type not in TARGET_TYPES:
        raise PackageError(f"--target-type {target_type!r} is not one of {', '.join(TARGET_TYPES)}")
    if target_type and built.target_type and target_type != built.target_type:
        raise PackageError(
            f"--target-type {target_type} contradicts the model, which is {built.target_type}"
            + (f" with classes {built.class_labels}" if built.class_labels else "")
        )
    resolved = target_type or built.target_type
    if resolved is None:
        raise PackageError(
            "cannot tell the model's target type from the model itself; pass "
            "--target-type regression|binary|multiclass (and --class-labels for classifiers)"
        )
    labels = class_labels or built.class_labels
    if class_labels and built.class_labels and len(class_labels) != len(built.class_labels):
        raise PackageError(
            f"--class-labels gives {len(class_labels)} labels but the model has "
            f"{len(built.class_labels)} classes {built.class_labels}"
        )
    return resolved, (None if resolved == "regression" else labels)


def build_package_from(
    source: Path,
    fmt: str,
    output: Path,
    *,
    target_type: str | None = None,
    name: str | None = None,
    class_labels: list[str] | None = None,
    training_frame: pd.DataFrame | None = None,
) -> Manifest:
    """Like build_package, with the training data already in memory."""
    source = Path(source)
    if not source.exists():
        raise PackageError(f"{source}: no such file or directory to package")
    built: BuiltPayload = format_module(fmt).build(source)
    resolved_type, labels = _resolve_target(built, target_type, class_labels)
    features = _resolve_features(built.features, training_frame)
    summary = summarize(training_frame, features) if training_frame is not None else None
    try:
        manifest = Manifest(
            name=name or source.stem,
            format=fmt,  # type: ignore[arg-type]
            target_type=resolved_type,  # type: ignore[arg-type]
            class_labels=labels,
            features=features,
            library_versions=built.library_versions,
            payload_sha256=payload_digest(built.files.items()),
            payload_files=sorted(built.files),
            training_summary=summary,
        )
    except ValidationError as exc:
        raise PackageError("; ".join(err["msg"].removeprefix("Value error, ") for err in exc.errors())) from exc
    write_package(Path(output), manifest, built.files)
    return manifest


def build_package(
    source: Path,
    fmt: str,
    output: Path,
    *,
    target_type: str | None = None,
    name: str | None = None,
    training_data: Path | None = None,
    class_labels: list[str] | None = None,
) -> Manifest:
    """Package `source` (model file or directory) of format `fmt` into the file `output`.

    `training_data` is a CSV of the training rows: it names and types the features and
    fills the manifest's training_summary (the drift baseline).
    """
    frame = read_training_csv(Path(training_data)) if training_data is not None else None
    return build_package_from(
        source,
        fmt,
        output,
        target_type=target_type,
        name=name,
        class_labels=class_labels,
        training_frame=frame,
    )
