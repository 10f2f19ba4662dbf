"""The local platform (deckhand.agent.platforms): its settings, and the port a restarted
agent gives the prediction server."""

from __future__ import annotations

import socket

import pytest

from deckhand.agent.platforms import MONITORING_KEY, local_monitoring_enabled, port_is_free


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


def _server_socket() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as serving/runner.py binds
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_a_port_held_only_by_time_wait_connections_is_free() -> None:
    """A server that closed its connections first (SIGTERM/SIGKILL under traffic) leaves them
    in TIME_WAIT on its port for a minute; its successor can still bind there."""
    server = _server_socket()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server side closes first: its end goes to TIME_WAIT
    server.close()
    client.recv(1)
    client.close()
    assert port_is_free(port)
    successor = socket.socket()
    successor.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    successor.bind(("127.0.0.1", port))  # what the next prediction server does
    successor.close()


def test_a_listening_port_is_not_free() -> None:
    server = _server_socket()
    try:
        assert not port_is_free(server.getsockname()[1])
    finally:
        server.close()
