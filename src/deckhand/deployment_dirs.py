"""Deployment directories: the on-disk layout the filesystem plugin writes and the
multi-model prediction server reads (its watcher and admin listener), kept apart from both.

One directory per deployment under a base dir, holding the model artifact and an info
file (`config.yml`: deployment_id, model_id, model_artifact, model_artifact_size).
Every change is crash-safe:

- a new deployment is written under a hidden temp name, fsynced, then renamed;
- a model replacement writes the new artifact under a new name in the same directory,
  then atomically replaces the info file, then deletes the old artifact;

so a reader that follows the info file never sees a partial artifact. Names starting
with "." are work in progress and are ignored by readers.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

from deckhand.fsutil import atomic_write_text, copy_file_synced, fsync_dir

# The plugin runner imports this module for every filesystem action: no typing,
# dataclasses, secrets or shutil at the top (together ~15 ms of each start).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

INFO_FILE = "config.yml"
TMP_PREFIX = ".tmp-"
TRASH_PREFIX = ".trash-"


class LayoutError(Exception):
    """A deployment directory or its input is not usable; the message says what and where."""


class DeploymentDir:
    """One deployment directory as read (a plain class: see the imports above)."""

    __slots__ = ("path", "name", "deployment_id", "model_id", "artifact", "kv")

    def __init__(
        self,
        path: Path,
        name: str,
        deployment_id: str,
        model_id: str,
        artifact: Path,
        kv: dict[str, Any] | None = None,
    ) -> None:
        self.path = path
        self.name = name
        self.deployment_id = deployment_id
        self.model_id = model_id
        self.artifact = artifact
        self.kv = {} if kv is None else kv

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, slot) for slot in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DeploymentDir) and self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # mutable fields, as the frozen dataclass's kv was

    def __repr__(self) -> str:
        return "DeploymentDir(" + ", ".join(f"{slot}={getattr(self, slot)!r}" for slot in self.__slots__) + ")"


def _token(nbytes: int) -> str:
    return os.urandom(nbytes).hex()  # as secrets.token_hex, without importing secrets


def check_dir_name(name: str) -> str:
    """Refuse names that would escape the base dir or hide from readers."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise LayoutError(
            f"deployment directory name {name!r} is not allowed: ids must not be empty or contain path separators"
        )
    if name.startswith(".") or ".." in name:
        raise LayoutError(f"deployment directory name {name!r} is not allowed: no leading '.' or '..'")
    return name


def check_artifact(artifact: Path | str | None) -> Path:
    if artifact is None or str(artifact) == "":
        raise LayoutError("deploymentInfo.modelArtifact is missing: the path of the model to deploy")
    path = Path(artifact)
    if not path.exists():
        raise LayoutError(f"model artifact {path} does not exist")
    if path.is_dir():
        raise LayoutError(f"model artifact {path} is a directory; expected a model package file")
    if not os.access(path, os.R_OK):
        raise LayoutError(f"model artifact {path} is not readable")
    return path


def _load_yaml(path: Path) -> Any:
    import yaml

    with open(path, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


# Parsed info files by path, valid while the file's (mtime, size, inode) is unchanged. The
# agent lists every deployment on each resync and the prediction server re-reads a
# directory whenever it changes; with 1,000 deployments, parsing the YAML each time was
# most of an idle agent's CPU. Info files are only ever replaced by rename (new inode).
_INFO_CACHE: dict[str, tuple[tuple[int, int, int], Any]] = {}
_INFO_CACHE_MAX = 20_000


def _load_info(path: Path) -> Any:
    st = os.stat(path)
    key = (st.st_mtime_ns, st.st_size, st.st_ino)
    cached = _INFO_CACHE.get(str(path))
    if cached is not None and cached[0] == key:
        return copy.deepcopy(cached[1])
    info = _load_yaml(path)
    if len(_INFO_CACHE) >= _INFO_CACHE_MAX:
        _INFO_CACHE.clear()
    _INFO_CACHE[str(path)] = (key, info)
    return copy.deepcopy(info)


def _dump_yaml(values: Any) -> str:
    from deckhand import yamlio  # block YAML without importing PyYAML

    return yamlio.dumps_block(values, indent=2)


def read_deployment_dir(path: Path, info_file: str = INFO_FILE) -> DeploymentDir:
    path = Path(path)
    if not path.is_dir():
        raise LayoutError(f"no deployment directory {path}")
    info_path = path / info_file
    try:
        info = _load_info(info_path)
    except FileNotFoundError:
        raise LayoutError(f"no deployment info file {info_path}") from None
    except Exception as exc:
        raise LayoutError(f"deployment info file {info_path} is not valid YAML: {exc}") from None
    if not isinstance(info, dict):
        raise LayoutError(f"deployment info file {info_path} must hold a mapping")
    missing = [k for k in ("deployment_id", "model_id") if not info.get(k)]
    if missing:
        raise LayoutError(f"deployment info file {info_path} is missing {', '.join(missing)}")
    artifact_name = info.get("model_artifact")
    if artifact_name:
        artifact = path / str(artifact_name)
    else:  # written by another tool: accept exactly one non-hidden file besides the info files
        candidates = [
            p
            for p in path.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.name != info_file and p.suffix not in (".yml", ".yaml")
        ]
        if len(candidates) != 1:
            raise LayoutError(f"{path}: cannot tell which file is the model artifact ({len(candidates)} candidates)")
        artifact = candidates[0]
    if not artifact.is_file():
        raise LayoutError(f"model artifact {artifact} named in {info_path} is missing")
    expected_size = info.get("model_artifact_size")
    if expected_size is not None and artifact.stat().st_size != int(expected_size):
        raise LayoutError(f"model artifact {artifact} has {artifact.stat().st_size} bytes, expected {expected_size}")
    kv = info.get("key_values") if isinstance(info.get("key_values"), dict) else {}
    return DeploymentDir(path, path.name, str(info["deployment_id"]), str(info["model_id"]), artifact, kv)


def scan(base_dir: Path, prefix: str = "", info_file: str = INFO_FILE) -> dict[str, DeploymentDir | LayoutError]:
    """Every deployment directory (name starts with prefix, not hidden) -> its state."""
    found: dict[str, DeploymentDir | LayoutError] = {}
    try:
        entries = list(os.scandir(base_dir))
    except FileNotFoundError:
        return found
    for entry in entries:
        if entry.name.startswith(".") or not entry.name.startswith(prefix):
            continue
        if not entry.is_dir():
            continue
        try:
            found[entry.name] = read_deployment_dir(Path(entry.path), info_file)
        except LayoutError as exc:
            found[entry.name] = exc
    return found


def install(
    base_dir: Path,
    dir_name: str,
    deployment_id: str,
    model_id: str,
    artifact_src: Path,
    *,
    kv: dict[str, Any] | None = None,
    info_file: str = INFO_FILE,
    kv_file: str | None = None,
) -> DeploymentDir:
    """Create the deployment directory, or replace its model, atomically."""
    base_dir = Path(base_dir)
    check_dir_name(dir_name)
    artifact_src = check_artifact(artifact_src)
    final = base_dir / dir_name
    if final.is_dir():
        return _replace_model(final, deployment_id, model_id, artifact_src, kv, info_file, kv_file)

    work = base_dir / f"{TMP_PREFIX}{dir_name}-{_token(4)}"
    work.mkdir()
    try:
        artifact = work / artifact_src.name
        size = copy_file_synced(artifact_src, artifact)
        _write_info(work, info_file, deployment_id, model_id, artifact.name, size, kv)
        _write_kv(work, kv_file, info_file, kv)
        fsync_dir(work)
        try:
            os.rename(work, final)
        except OSError:
            if final.is_dir():  # someone created it meanwhile: fall back to a replacement
                _rmtree(work)
                return _replace_model(final, deployment_id, model_id, artifact_src, kv, info_file, kv_file)
            raise
        fsync_dir(base_dir)
        # The info file keeps its inode through the rename: its cached values still hold.
        cached = _INFO_CACHE.pop(str(work / info_file), None)
        if cached is not None:
            _INFO_CACHE[str(final / info_file)] = cached
    except BaseException:
        _rmtree(work)
        raise
    return read_deployment_dir(final, info_file)


def _replace_model(
    final: Path,
    deployment_id: str,
    model_id: str,
    artifact_src: Path,
    kv: dict[str, Any] | None,
    info_file: str,
    kv_file: str | None,
) -> DeploymentDir:
    try:
        old: DeploymentDir | None = read_deployment_dir(final, info_file)
    except LayoutError:
        old = None
    name = artifact_src.name
    if old is not None and old.artifact.name == name:
        stem, suffix = os.path.splitext(name)
        name = f"{stem}.{_token(3)}{suffix}"
    tmp = final / f"{TMP_PREFIX}{name}"
    try:
        size = copy_file_synced(artifact_src, tmp)
        os.rename(tmp, final / name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(final)
    # The switch: readers follow the info file, which now names the new artifact.
    _write_info(final, info_file, deployment_id, model_id, name, size, kv)
    _write_kv(final, kv_file, info_file, kv)
    if old is not None and old.artifact.name != name:
        old.artifact.unlink(missing_ok=True)
    _remove_stale_temp_files(final)
    return read_deployment_dir(final, info_file)


def remove(base_dir: Path, dir_name: str) -> bool:
    """Delete a deployment directory; it vanishes for readers at once (rename first)."""
    check_dir_name(dir_name)
    final = Path(base_dir) / dir_name
    if not final.exists():
        return False
    trash = Path(base_dir) / f"{TRASH_PREFIX}{dir_name}-{_token(4)}"
    os.rename(final, trash)
    _rmtree(trash)
    return True


def remove_stale_work(base_dir: Path) -> list[str]:
    """Remove leftovers of interrupted installs and removals (hidden temp/trash dirs)."""
    removed = []
    try:
        entries = list(os.scandir(base_dir))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if entry.name.startswith((TMP_PREFIX, TRASH_PREFIX)):
            _rmtree(entry.path)
            removed.append(entry.name)
    return removed


def _rmtree(path: str | Path) -> None:
    import shutil  # only when something is removed

    shutil.rmtree(path, ignore_errors=True)


def _remove_stale_temp_files(directory: Path) -> None:
    for entry in os.scandir(directory):
        if entry.name.startswith(TMP_PREFIX) and entry.is_file():
            Path(entry.path).unlink(missing_ok=True)


def _write_info(
    directory: Path,
    info_file: str,
    deployment_id: str,
    model_id: str,
    artifact_name: str,
    size: int,
    kv: dict[str, Any] | None,
) -> None:
    values: dict[str, Any] = {
        "deployment_id": deployment_id,
        "model_id": model_id,
        "model_artifact": artifact_name,
        "model_artifact_size": size,
    }
    if kv:
        values["key_values"] = kv
    path = directory / info_file
    atomic_write_text(path, _dump_yaml(values))
    # Known without reading it back: the read that follows an install needs no YAML parser.
    st = os.stat(path)
    _INFO_CACHE[str(path)] = ((st.st_mtime_ns, st.st_size, st.st_ino), copy.deepcopy(values))


def _write_kv(directory: Path, kv_file: str | None, info_file: str, kv: dict[str, Any] | None) -> None:
    # Same name as the info file: the key values already went into it (as bosun's documented filesystem plugin does).
    if kv_file and kv_file != info_file:
        atomic_write_text(directory / kv_file, _dump_yaml(kv or {}))
