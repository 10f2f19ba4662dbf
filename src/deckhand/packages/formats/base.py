"""What a format's builder reports about the model it packaged."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from deckhand.packages.errors import PackageError
from deckhand.packages.manifest import Feature


@dataclass
class BuiltPayload:
    """Payload files plus what the builder could learn from the model itself."""

    files: dict[str, bytes]
    target_type: str | None = None
    class_labels: list[str] | None = None
    features: list[Feature] | None = None
    library_versions: dict[str, str] = field(default_factory=dict)


Learned = tuple[str | None, list[str] | None, list[Feature] | None]
"""What a builder learns from the model itself: target type, class labels and features."""


def build_one_file(
    source: Path,
    *,
    suffixes: tuple[str, ...],
    wanted: str,
    hint: str = "",
    learn: Callable[[bytes, Path], Learned],
    payload_name: str,
    libraries: tuple[str, ...],
) -> BuiltPayload:
    """The build of a format whose payload is one model file.

    SOURCE is that file, or a directory holding exactly one file with one of SUFFIXES
    (WANTED names them in the error, HINT ends it). LEARN reads what the model knows about
    itself from the file's bytes; the payload is those bytes, named PAYLOAD_NAME.
    """
    if source.is_dir():
        candidates = sorted(p for p in source.iterdir() if p.suffix in suffixes)
        if len(candidates) != 1:
            raise PackageError(
                f"{source}: expected exactly one {wanted} file in the directory, "
                f"found {[p.name for p in candidates]}{hint}"
            )
        source = candidates[0]
    raw = source.read_bytes()
    target_type, labels, features = learn(raw, source)
    return BuiltPayload(
        files={payload_name: raw},
        target_type=target_type,
        class_labels=labels,
        features=features,
        library_versions=versions(*libraries),
    )


def versions(*distributions: str) -> dict[str, str]:
    """Installed versions of the named distributions (absent ones are left out), plus python."""
    found = {"python": sys.version.split()[0]}
    for name in distributions:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def read_tree(root: Path) -> dict[str, bytes]:
    """Every file under a directory, keyed by its POSIX path relative to it."""
    files = {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }
    if not files:
        raise PackageError(f"{root}: the directory is empty; nothing to package")
    return files


def write_tree(files: dict[str, bytes], root: Path) -> None:
    """Extract payload files under root, refusing names that would escape it."""
    base = root.resolve()
    for name, content in files.items():
        target = (root / name).resolve()
        if base not in target.parents:
            raise PackageError(f"corrupt: payload file name {name!r} points outside the package")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def sklearn_introspect(model: object) -> Learned:
    """target type, class labels and feature names an sklearn estimator knows about itself."""
    classes = getattr(model, "classes_", None)
    target_type: str | None
    labels: list[str] | None = None
    if classes is not None:
        labels = [str(c) for c in list(classes)]
        target_type = "binary" if len(labels) == 2 else "multiclass"
    elif hasattr(model, "predict"):
        target_type = "regression"
    else:
        target_type = None
    features: list[Feature] | None = None
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        features = [Feature(name=str(n)) for n in names]
    elif getattr(model, "n_features_in_", None) is not None:
        features = [Feature(name=f"f{i}") for i in range(int(model.n_features_in_))]  # type: ignore[attr-defined]
    return target_type, labels, features
