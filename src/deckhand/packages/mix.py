"""Mixes: several model packages served as one deployment (champion, canary, challengers).

This is the control plane's part only, `served_model_id`: the id the desired state gives a
deployment's whole mix. The writer and reader of mix files (`write_mix`, `read_mix`, ...)
join this module from the agent side; whatever else changes, the rule below must not, or
agents and the control plane disagree about what a deployment serves.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

MIX_ID_PREFIX = "mix-"


def served_model_id(champion_id: str, traffic: dict[str, Any] | None) -> str:
    """The champion's id when it serves alone; otherwise "mix-" + 16 hex digits of the SHA-256
    of the canonical JSON of the champion and the traffic reduced to what routes requests
    (member ids, the canary's share, the sticky key), so that any change of these is a new id."""
    if not traffic or (not traffic.get("canary") and not traffic.get("challengers")):
        return champion_id
    canary = traffic.get("canary")
    reduced = {
        "canary": None if not canary else {"modelId": canary["modelId"], "percent": canary["percent"]},
        "challengers": sorted(
            ({"modelId": c["modelId"]} for c in traffic.get("challengers") or ()), key=lambda c: c["modelId"]
        ),
        "sticky": traffic.get("sticky"),
    }
    canonical = json.dumps({"champion": champion_id, "traffic": reduced}, sort_keys=True, separators=(",", ":"))
    return MIX_ID_PREFIX + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
