"""read_manifest refuses damaged packages and says which problem it found."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from deckhand.packages import PackageError, read_manifest
from deckhand.packages.container import MANIFEST_NAME, read_package


def _rewrite(src: Path, dst: Path, change: dict[str, bytes | None]) -> None:
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w") as new:
        for item in old.infolist():
            if item.filename in change:
                data = change[item.filename]
                if data is not None:
                    new.writestr(item.filename, data)
            else:
                new.writestr(item.filename, old.read(item.filename))


def test_round_trip_keeps_the_manifest(demo_package: Path) -> None:
    manifest = read_manifest(demo_package)
    assert manifest.format == "sklearn"
    assert manifest.target_type == "multiclass"
    assert manifest.class_labels == ["setosa", "versicolor", "virginica"]
    assert manifest.feature_names == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert "scikit-learn" in manifest.library_versions
    summary = manifest.training_summary
    assert summary is not None and summary.rows == 150
    petal = summary.features["petal_length"]
    assert petal.kind == "numeric" and sum(petal.counts) == 150
    assert len(petal.edges) == len(petal.counts) + 1


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="no such package file"):
        read_manifest(tmp_path / "absent.dhpkg")


def test_not_a_package(tmp_path: Path) -> None:
    path = tmp_path / "model.dhpkg"
    path.write_text("just text")
    with pytest.raises(PackageError, match="unknown format: not a deckhand package"):
        read_manifest(path)


def test_truncated(demo_package: Path, tmp_path: Path) -> None:
    data = demo_package.read_bytes()
    path = tmp_path / "cut.dhpkg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(PackageError, match="truncated"):
        read_manifest(path)


def test_corrupt_member(demo_package: Path, tmp_path: Path) -> None:
    data = bytearray(demo_package.read_bytes())
    path = tmp_path / "flipped.dhpkg"
    # flip bytes inside the first member's compressed data (after its local header)
    with zipfile.ZipFile(demo_package) as archive:
        info = archive.getinfo(MANIFEST_NAME)
    start = info.header_offset + 30 + len(info.filename) + 5
    for i in range(start, start + 20):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(PackageError, match="corrupt"):
        read_manifest(path)


def test_manifest_not_json(demo_package: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.dhpkg"
    _rewrite(demo_package, path, {MANIFEST_NAME: b"{not json"})
    with pytest.raises(PackageError, match="corrupt: manifest.json is not valid JSON"):
        read_manifest(path)


def test_manifest_missing(demo_package: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.dhpkg"
    _rewrite(demo_package, path, {MANIFEST_NAME: None})
    with pytest.raises(PackageError, match="no manifest.json"):
        read_manifest(path)


def test_unknown_model_format(demo_package: Path, tmp_path: Path) -> None:
    manifest = json.loads(zipfile.ZipFile(demo_package).read(MANIFEST_NAME))
    manifest["format"] = "xgboost"
    path = tmp_path / "bad.dhpkg"
    _rewrite(demo_package, path, {MANIFEST_NAME: json.dumps(manifest).encode()})
    with pytest.raises(PackageError, match="unknown format 'xgboost'"):
        read_manifest(path)


def test_invalid_manifest_field_is_named(demo_package: Path, tmp_path: Path) -> None:
    manifest = json.loads(zipfile.ZipFile(demo_package).read(MANIFEST_NAME))
    manifest["target_type"] = "ranking"
    path = tmp_path / "bad.dhpkg"
    _rewrite(demo_package, path, {MANIFEST_NAME: json.dumps(manifest).encode()})
    with pytest.raises(PackageError, match="target_type"):
        read_manifest(path)


def test_checksum_mismatch(demo_package: Path, tmp_path: Path) -> None:
    path = tmp_path / "swapped.dhpkg"
    _rewrite(demo_package, path, {"payload/model.joblib": b"another model"})
    with pytest.raises(PackageError, match="checksum mismatch"):
        read_manifest(path)


def test_write_is_atomic_no_temp_left(demo_package: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.dhpkg"
    shutil.copy(demo_package, copy)
    manifest, payload = read_package(copy)
    assert set(payload) == set(manifest.payload_files)
    assert [p.name for p in tmp_path.iterdir()] == ["copy.dhpkg"]
