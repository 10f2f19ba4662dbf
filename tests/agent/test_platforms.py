"""The local platform's settings (deckhand.agent.platforms)."""

from __future__ import annotations

import pytest

from deckhand.agent.platforms import MONITORING_KEY, local_monitoring_enabled


@pytest.mark.parametrize(
    ("configs", "expected"),
    [
        ((), True),  # unset: the local platform monitors
        (({MONITORING_KEY: None}, {}), True),
        (({MONITORING_KEY: "off"},), False),
        (({MONITORING_KEY: "maybe"},), False),  # unclear is off, as for every boolean setting
        (({}, {MONITORING_KEY: "yes"}), True),
        (({MONITORING_KEY: False}, {MONITORING_KEY: True}), False),  # the first config that sets it wins
    ],
)
def test_local_monitoring_follows_the_first_config_that_sets_it(configs, expected):
    assert local_monitoring_enabled(*configs) is expected
