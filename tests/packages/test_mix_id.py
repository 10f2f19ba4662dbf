"""`served_model_id`: the champion's id alone, a stable "mix-" id otherwise, new on every change
of share, members or sticky key, and blind to what does not route requests."""

from __future__ import annotations

import hashlib
import json

from deckhand.packages.mix import served_model_id

CANARY = {"modelId": "b" * 24, "modelSha256": "0" * 64, "modelFormat": "sklearn", "modelSize": 10, "percent": 20}


def test_the_champion_alone_is_served_under_its_own_id() -> None:
    assert served_model_id("a" * 24, None) == "a" * 24
    assert served_model_id("a" * 24, {"canary": None, "challengers": [], "sticky": None}) == "a" * 24


def test_the_mix_id_follows_the_documented_rule() -> None:
    traffic = {"canary": CANARY, "challengers": [], "sticky": {"header": "x-customer-id"}}
    canonical = json.dumps(
        {
            "champion": "a" * 24,
            "traffic": {"canary": {"modelId": "b" * 24, "percent": 20}, "challengers": [],
                        "sticky": {"header": "x-customer-id"}},
        },
        sort_keys=True,
        separators=(",", ":"),
    )  # fmt: skip
    assert served_model_id("a" * 24, traffic) == "mix-" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def test_every_routing_change_is_a_new_id_and_nothing_else_is() -> None:
    base = {"canary": CANARY, "challengers": [{"modelId": "c" * 24}, {"modelId": "d" * 24}], "sticky": None}
    ids = {
        served_model_id("a" * 24, base),
        served_model_id("a" * 24, {**base, "canary": {**CANARY, "percent": 30}}),
        served_model_id("a" * 24, {**base, "challengers": [{"modelId": "c" * 24}]}),
        served_model_id("a" * 24, {**base, "sticky": {"field": "customer_id"}}),
        served_model_id("e" * 24, base),
    }
    assert len(ids) == 5
    # member order and fields that do not route (size, digest) leave the id alone
    reordered = {**base, "challengers": list(reversed(base["challengers"])), "canary": {**CANARY, "modelSize": 99}}
    assert served_model_id("a" * 24, reordered) == served_model_id("a" * 24, base)


def test_a_copy_share_under_100_is_a_new_id_and_100_or_none_is_the_old_one() -> None:
    base = {"canary": None, "challengers": [{"modelId": "c" * 24}], "sticky": None}
    old = served_model_id("a" * 24, base)
    assert served_model_id("a" * 24, {**base, "challengerCopyPercent": 100}) == old
    assert served_model_id("a" * 24, {**base, "challengerCopyPercent": None}) == old
    quarter = served_model_id("a" * 24, {**base, "challengerCopyPercent": 25})
    assert quarter != old and quarter.startswith("mix-")
    assert served_model_id("a" * 24, {**base, "challengerCopyPercent": 25.0}) == quarter  # 25 and 25.0 alike
    assert served_model_id("a" * 24, {**base, "challengerCopyPercent": 10}) not in (old, quarter)
