"""The local platform's port choice: a restarted agent keeps the prediction server's port."""

from __future__ import annotations

import socket

from deckhand.agent.platforms import port_is_free


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
