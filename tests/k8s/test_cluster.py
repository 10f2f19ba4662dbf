"""The test environment's start-up checks, with fake components: a component that exits while
`up` waits for it is reported with its exit status and output, and the listener ports `up`
hands out are distinct and cannot be taken by the kernel for anyone else before use."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from k8s_testenv import cluster
from k8s_testenv.cluster import EnvError, free_ports, wait_for
from k8s_testenv.procs import Procs


def test_a_component_that_exits_while_waited_for_is_reported_with_its_status_and_output(tmp_path: Path) -> None:
    procs = Procs(tmp_path)
    procs.start("fake", ["/bin/sh", "-c", "echo output of an earlier start"]).wait()
    bind_error = "listen tcp 127.0.0.1:1234: bind: address already in use"
    procs.start("fake", ["/bin/sh", "-c", f"echo '{bind_error}' >&2; exit 3"])
    with pytest.raises(EnvError) as err:
        wait_for("fake /ping", lambda: False, timeout=30, procs=procs, log="fake")
    message = str(err.value)
    assert message.startswith("fake exited while waiting for fake /ping (exit status 3)")
    assert bind_error in message
    assert "earlier start" not in message  # only the latest start's output


def test_a_component_killed_by_a_signal_says_which(tmp_path: Path) -> None:
    procs = Procs(tmp_path)
    procs.start("fake", ["/bin/sh", "-c", "kill -TERM $$"])
    with pytest.raises(EnvError, match=r"exited while waiting for fake \(killed by signal 15 \(Terminated\)\)"):
        wait_for("fake", lambda: False, timeout=30, procs=procs, log="fake")


def test_free_ports_are_distinct_and_outside_the_ephemeral_range() -> None:
    # bind(0) ports come from the ephemeral range, where back-to-back calls repeat a port
    # (two components on one port: "bind: address already in use") and any other process's
    # bind(0) or outgoing connection may take one before its component binds it
    low, high = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    names = [f"component{i}" for i in range(12)]
    for _ in range(50):
        ports = free_ports(names)
        assert sorted(ports) == sorted(names)
        assert len(set(ports.values())) == len(names)
        assert all(not low <= p <= high for p in ports.values())


def test_free_ports_skips_a_port_in_use_and_says_when_too_few_are_free(monkeypatch: pytest.MonkeyPatch) -> None:
    busy_port, free_port = free_ports(["busy", "free"]).values()
    monkeypatch.setattr(cluster, "PORT_BAND", [busy_port, free_port])
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", busy_port))
        busy.listen()
        assert free_ports(["traefik"]) == {"traefik": free_port}
        with pytest.raises(EnvError, match="only 1 of 2 ports free"):
            free_ports(["web", "api"])
