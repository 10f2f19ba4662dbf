"""The models a server holds, one entry per deployment, swapped atomically on reload.

Readers (the request path) take `entry.current` once per request; loaders (a worker
thread) build a whole new `ServingModel` and assign it in one step, so a request sees the
old model or the new one, never half of each. When a load fails the old model keeps
serving and the error is kept on the entry for `/deployments/<id>/info`.

A mix file (deckhand.packages.mix: champion, canary, challengers) is published the same way:
one `ServingModel` whose `mix` holds the members. Members whose package (sha256) the old
version already had loaded are reused, so a canary stepping from 10 % to 20 % loads nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deckhand.package_limits import PackageLimits
from deckhand.packages import LoadedModel, Manifest, PackageError, file_sha256, load_model, read_manifest
from deckhand.packages.loader import work_dir
from deckhand.packages.mix import extract_members, is_mix, read_mix
from deckhand.serving.batching import DEFAULT_MAX_BATCH_ROWS, MicroBatcher
from deckhand.serving.mixes import MODEL_ID_HEADER, Challenger, MixRouting

log = logging.getLogger("deckhand.serving")

RETIRE_AFTER_S = 30.0  # old models are closed this long after a swap (in-flight requests)


@dataclass
class BatchingConfig:
    enabled: bool = True
    max_rows: int = DEFAULT_MAX_BATCH_ROWS
    max_wait_s: float = 0.0
    inline_max_rows: int = 1000


@dataclass
class ServingModel:
    """One loaded version of a deployment's model (immutable once published)."""

    model: LoadedModel
    model_id: str | None
    package_path: Path
    package_sha256: str
    loaded_at: float
    load_seconds: float
    batcher: MicroBatcher
    mix: MixRouting | None = None  # set when the package is a mix: the members answer
    headers: list[tuple[bytes, bytes]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # the response header naming the model that answered, built once
        self.headers = [(MODEL_ID_HEADER, (self.model_id or "").encode("latin-1", "replace"))]

    @property
    def manifest(self) -> Manifest:
        return self.model.manifest

    def models(self) -> list[LoadedModel]:
        """Every model this version holds loaded (a mix: its champion and canary)."""
        return [self.model] if self.mix is None else [m.model for m in self.mix.loaded()]


@dataclass
class DeploymentEntry:
    key: str  # the directory name (multi-model) or the configured id (single model)
    deployment_id: str
    current: ServingModel | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    loading: bool = False
    source_signature: Any = None  # what was last loaded (or tried) from disk
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def state(self) -> str:
        if self.current is not None:
            return "ready"
        if self.loading or self.last_error is None:
            return "launching"
        return "errored"

    def info(self) -> dict[str, Any]:
        current = self.current
        body: dict[str, Any] = {
            "deploymentId": self.deployment_id,
            "directory": self.key,
            "state": self.state,
            "lastError": self.last_error,
            "lastErrorAt": self.last_error_at,
        }
        if current is not None:
            manifest = current.manifest
            body.update(
                modelId=current.model_id,
                loadedAt=current.loaded_at,
                loadSeconds=round(current.load_seconds, 4),
                package={
                    "path": str(current.package_path),
                    "sha256": current.package_sha256,
                    "name": manifest.name,
                    "format": manifest.format,
                    "targetType": manifest.target_type,
                    "classLabels": manifest.class_labels,
                    "features": [f.model_dump() for f in manifest.features],
                    "libraryVersions": manifest.library_versions,
                    "payloadSha256": manifest.payload_sha256,
                },
            )
            if current.mix is not None:
                body["mix"] = current.mix.describe()
        return body


class ModelRepository:
    """Deployment entries by key, plus deployment-id aliases when unambiguous."""

    def __init__(
        self,
        batching: BatchingConfig | None = None,
        executor: Any = None,
        package_limits: PackageLimits | None = None,
    ) -> None:
        self.batching = batching or BatchingConfig()
        self.executor = executor
        self.package_limits = package_limits or PackageLimits()
        self._entries: dict[str, DeploymentEntry] = {}
        self._aliases: dict[str, str] = {}
        self._lock = threading.Lock()
        self.load_failures = 0

    # -- reading (request path) -------------------------------------------------------
    def resolve(self, ref: str) -> DeploymentEntry | None:
        entry = self._entries.get(ref)
        if entry is None:
            key = self._aliases.get(ref)
            entry = self._entries.get(key) if key is not None else None
        return entry

    def entries(self) -> list[DeploymentEntry]:
        return sorted(self._entries.values(), key=lambda e: e.key)

    def keys(self) -> set[str]:
        return set(self._entries)

    # -- writing (loader threads) -----------------------------------------------------
    def entry(self, key: str, deployment_id: str) -> DeploymentEntry:
        """The entry for key, created if new; its deployment id is kept up to date."""
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                found = DeploymentEntry(key=key, deployment_id=deployment_id)
                self._entries[key] = found
            elif found.deployment_id != deployment_id:
                found.deployment_id = deployment_id
            self._rebuild_aliases()
            return found

    def remove(self, key: str) -> bool:
        with self._lock:
            entry = self._entries.pop(key, None)
            self._rebuild_aliases()
        if entry is None:
            return False
        if entry.current is not None:
            _retire(entry.current)
        log.info("event=model_unloaded deployment=%s", key)
        return True

    def _rebuild_aliases(self) -> None:
        counts: dict[str, list[str]] = {}
        for key, entry in self._entries.items():
            if entry.deployment_id != key:
                counts.setdefault(entry.deployment_id, []).append(key)
        self._aliases = {
            dep_id: keys[0] for dep_id, keys in counts.items() if len(keys) == 1 and dep_id not in self._entries
        }

    def load_into(
        self,
        entry: DeploymentEntry,
        package_path: Path,
        model_id: str | None,
        signature: Any = None,
    ) -> bool:
        """Load a package (or a mix) and publish it on the entry; on failure keep the old one."""
        started = time.perf_counter()
        entry.loading = True
        entry.source_signature = signature
        try:
            sha = file_sha256(package_path)
            if is_mix(package_path):
                serving = self._load_mix(entry.current, Path(package_path), model_id, sha, started)
            elif (found := _reusable(entry.current).get(sha)) is not None:  # e.g. a promoted canary
                serving = self._serving(
                    found.model, model_id or found.manifest.name, Path(package_path), sha, started, found.batcher
                )
                serving.loaded_at = found.loaded_at  # still the model loaded then
            else:
                model = load_model(package_path, self.package_limits)
                serving = self._serving(model, model_id or model.manifest.name, Path(package_path), sha, started)
        except (PackageError, OSError) as exc:
            return self._failed(entry, package_path, str(exc))
        except Exception as exc:  # a model's own load code can raise anything
            return self._failed(entry, package_path, f"{type(exc).__name__}: {exc}")
        finally:
            entry.loading = False
        serving.load_seconds = time.perf_counter() - started
        old, entry.current = entry.current, serving
        entry.last_error = entry.last_error_at = None
        if old is not None:
            _retire(old, keep=serving.models())
        log.info(
            "event=model_loaded deployment=%s model_id=%s format=%s seconds=%.3f",
            entry.key,
            serving.model_id,
            "mix" if serving.mix is not None else serving.manifest.format,
            serving.load_seconds,
        )
        return True

    def _serving(
        self,
        model: LoadedModel,
        model_id: str,
        path: Path,
        sha: str,
        started: float,
        batcher: MicroBatcher | None = None,
    ) -> ServingModel:
        batching = self.batching
        return ServingModel(
            model=model,
            model_id=model_id,
            package_path=path,
            package_sha256=sha,
            loaded_at=time.time(),
            load_seconds=time.perf_counter() - started,
            batcher=batcher
            or MicroBatcher(
                model.predict,
                max_rows=batching.max_rows,
                max_wait_s=batching.max_wait_s,
                inline_max_rows=batching.inline_max_rows,
                executor=self.executor,
                # schema-less models take each request's own columns: never merge those
                enabled=batching.enabled and bool(model.manifest.features),
            ),
        )

    def _load_mix(
        self, old: ServingModel | None, path: Path, model_id: str | None, sha: str, started: float
    ) -> ServingModel:
        """The ServingModel of a mix: champion and canary loaded (or reused from `old` when their
        package is unchanged), challengers checked and handed to the shadow scorer by path."""
        mix = read_mix(path, self.package_limits)
        paths = extract_members(mix, work_dir() / "mix-members")
        reusable = _reusable(old)
        loaded: list[LoadedModel] = []  # loaded here: closed again if the mix fails
        answering: dict[str, ServingModel] = {}
        try:
            for member in (mix.champion, mix.canary):
                if member is None:
                    continue
                found = reusable.get(member.sha256)
                if found is not None:
                    model, batcher = found.model, found.batcher
                else:
                    model, batcher = load_model(paths[member.model_id], self.package_limits), None
                    loaded.append(model)
                answering[member.role] = self._serving(
                    model, member.model_id, paths[member.model_id], member.sha256, started, batcher
                )
                if found is not None:  # still the model loaded then
                    answering[member.role].loaded_at = found.loaded_at
            challengers = tuple(
                Challenger(
                    c.model_id, paths[c.model_id], c.sha256, read_manifest(paths[c.model_id], self.package_limits)
                )
                for c in mix.challengers
            )
        except BaseException:
            for model in loaded:
                model.close()
            raise
        champion = answering["champion"]
        canary = answering.get("canary")
        serving = self._serving(champion.model, model_id or mix.served_model_id, path, sha, started, champion.batcher)
        serving.mix = MixRouting(
            served_model_id=mix.served_model_id,
            champion=champion,
            canary=canary,
            percent=mix.canary.percent if mix.canary is not None else 0,
            challengers=challengers,
            sticky=mix.sticky,
            association=mix.association,
            copy_percent=mix.copy_percent,
        )
        log.info(
            "event=mix_loaded path=%s members=%d loaded=%d reused=%d",
            path,
            len(mix.members),
            len(loaded),
            len(answering) - len(loaded),
        )
        return serving

    def _failed(self, entry: DeploymentEntry, path: Path, message: str) -> bool:
        self.load_failures += 1
        entry.last_error = message
        entry.last_error_at = time.time()
        log.warning(
            "event=model_load_failed deployment=%s package=%s kept_old=%s error=%r",
            entry.key,
            path,
            entry.current is not None,
            message,
        )
        return False


def _reusable(old: ServingModel | None) -> dict[str, ServingModel]:
    """The loaded models of the version being replaced, by package sha256."""
    if old is None:
        return {}
    return {m.package_sha256: m for m in (old.mix.loaded() if old.mix is not None else [old])}


def _retire(serving: ServingModel, keep: Sequence[LoadedModel] = ()) -> None:
    """Close the old version's models a while after a swap (in-flight requests), except those
    the new version reuses."""
    closing = [model for model in serving.models() if not any(model is kept for kept in keep)]
    if not closing:
        return

    def close() -> None:
        for model in closing:
            model.close()

    timer = threading.Timer(RETIRE_AFTER_S, close)
    timer.daemon = True
    timer.start()
