"""A deployment serving a mix (docs/rollouts.md): which member answers each request.

`MixRouting` hangs off the `ServingModel` the repository publishes for a mix file. The
champion and the canary are loaded `ServingModel`s of their own (model, batcher, model id);
challengers are only their extracted package paths and manifests: a separate scorer process
(`deckhand.serving.shadow`) loads and runs them, off the request path.

A request goes to the canary when its sticky value hashes below the canary's share
(`bucket`: CRC-32 of the value's UTF-8 text, mod 100, so an entity on the canary at 10 %
stays on it at 20 %), or, without a sticky value, when a random draw does. A request the
champion answered is copied to the challengers when a random draw falls within the
deployment's copy share (`takes_copy`; every request by default), as a mesh mirrors a share.
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deckhand.packages.manifest import Manifest
from deckhand.packages.mix import ALL_COPIED

if TYPE_CHECKING:
    from deckhand.packages.model import Batch
    from deckhand.serving.repository import ServingModel

MODEL_ID_HEADER = b"x-deckhand-model-id"


@dataclass(frozen=True)
class Challenger:
    """A challenger as the shadow scorer needs it: which model, where its package is."""

    model_id: str
    path: Path
    sha256: str
    manifest: Manifest


@dataclass
class MixRouting:
    served_model_id: str
    champion: ServingModel
    canary: ServingModel | None
    percent: int  # the canary's share of requests
    challengers: tuple[Challenger, ...]
    sticky: dict[str, str] | None
    # {"column": name or None, "generate": bool}: the rows' association ids (docs/accuracy.md)
    association: dict[str, Any] | None = None
    copy_percent: float = ALL_COPIED  # the share of the champion's requests the challengers get a copy of

    def __post_init__(self) -> None:
        sticky = self.sticky or {}
        self._header = sticky["header"].encode("latin-1") if "header" in sticky else None
        self._field = sticky.get("field")
        # what each copy for the challengers names them by (the shadow scorer's group key)
        self.shadow_targets = tuple((c.model_id, str(c.path)) for c in self.challengers)

    def route(self, headers: list[tuple[bytes, bytes]], batch: Batch) -> ServingModel:
        """The member that answers a request with these ASGI headers and this decoded batch."""
        canary = self.canary
        if canary is None:
            return self.champion
        value = self.sticky_value(headers, batch)
        draw = random.random() * 100.0 if value is None else bucket(value)
        return canary if draw < self.percent else self.champion

    def takes_copy(self) -> bool:
        """Whether the challengers get a copy of this request (a draw within the copy share)."""
        return self.copy_percent >= ALL_COPIED or random.random() * 100.0 < self.copy_percent

    def sticky_value(self, headers: list[tuple[bytes, bytes]], batch: Batch) -> str | None:
        """The request's sticky key: the header's value, or the field's value in the first row."""
        if self._header is not None:
            for name, value in headers:
                if name == self._header:
                    return value.decode("latin-1")
            return None
        if self._field is not None and len(batch):
            return _first_value(batch, self._field)
        return None

    def describe(self) -> dict[str, Any]:
        """The mix as /deployments/<id>/info shows it."""
        members = [_described(self.champion, "champion", 100 - self.percent)]
        if self.canary is not None:
            members.append(_described(self.canary, "canary", self.percent))
        members += [
            {"modelId": c.model_id, "role": "challenger", "percent": 0, "sha256": c.sha256} for c in self.challengers
        ]
        described = {"servedModelId": self.served_model_id, "members": members, "sticky": self.sticky}
        if self.association:
            described["associationId"] = self.association
        if self.challengers:
            described["challengerCopyPercent"] = self.copy_percent
        return described

    def loaded(self) -> list[ServingModel]:
        return [self.champion] if self.canary is None else [self.champion, self.canary]


def _described(member: ServingModel, role: str, percent: int) -> dict[str, Any]:
    # loadedAt stays when a swap reuses the member's model
    return {
        "modelId": member.model_id,
        "role": role,
        "percent": percent,
        "sha256": member.package_sha256,
        "loadedAt": member.loaded_at,
    }


def bucket(value: str) -> int:
    """0..99 for a sticky value, the same in every process and release."""
    return zlib.crc32(value.encode("utf-8")) % 100


def _first_value(batch: Batch, field: str) -> str | None:
    """The first row's value of a feature as text (integral floats without ".0", so 42 in a
    JSON row and 42.0 in a numeric array are the same key); None when absent or missing."""
    try:
        column = batch.columns.index(field)
    except ValueError:
        return None
    if batch.frame is not None:
        value = batch.frame.iat[0, column]
    elif batch.array is not None:
        value = batch.array[0, column]
    else:
        value = (batch.rows or [[]])[0][column] if batch.rows and len(batch.rows[0]) > column else None
    if value is None:
        return None
    if hasattr(value, "item"):  # a numpy scalar
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            return str(int(value))
    return str(value)
