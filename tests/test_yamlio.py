"""deckhand.yamlio: status files as block YAML that PyYAML reads back unchanged."""

from __future__ import annotations

import math

import pytest
import yaml

from deckhand.yamlio import dumps_block, loads

TRICKY_STRINGS = [
    "", "null", "Yes", "no", "ON", "~", "12", "1.5", "1e5", "0x1f", ".inf", "2026-01-01", "12:30",
    "-", "--- x", "a: b # c", "a\nb", "tab\there", " lead", "trail ", "@x", "%x", "`", "!x", "&x", "*x",
    "{", "[", "'", '"', "http://x:8080/p", "/tmp/x", "a_b.c-d", "é\x85", "\ufffe",
]  # fmt: skip


@pytest.mark.parametrize(
    "values",
    [
        {"data": None, "duration": 1e-05, "msg": None, "state": "errored", "status": "failing", "timestamp": 17},
        {"data": {"deploymentsStatus": {"d1": {"msg": None, "data": {"currentModelId": "m-1"}}, "yes": {}}}},
        {"list": [1, "two", {"a": 1}, [3], None, True, [], {}], "floats": [0.1, 1e20, -2.5e-7, 3.0, math.inf]},
        {"strings": TRICKY_STRINGS, **{s: i for i, s in enumerate(TRICKY_STRINGS)}},
    ],
)
def test_block_yaml_reads_back_unchanged(values):
    text = dumps_block(values)
    assert yaml.safe_load(text) == values
    assert loads(text) == values


def test_block_yaml_writes_one_plain_key_value_a_line():
    text = dumps_block({"status": "passing", "state": None, "duration": 0.5})
    assert text == "duration: 0.5\nstate: null\nstatus: passing\n"


def test_a_lone_surrogate_becomes_the_replacement_character():
    assert yaml.safe_load(dumps_block({"msg": "bad \ud800 byte"})) == {"msg": "bad \ufffd byte"}
