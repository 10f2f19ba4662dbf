"""deckhand-rabbitmq: AMQP from another container by name, and the management API."""

from __future__ import annotations

import base64
import json
import time

import pytest

from deckhand.testing import wait_until

from .conftest import Engine, http, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(3600)]


def test_rabbitmq_accepts_amqp_from_another_container(engine: Engine, image) -> None:
    ref = image("rabbitmq")
    python = image("python")
    net = engine.network("mq")
    name = engine.run(
        ref,
        name=engine.name("rabbitmq"),
        options=("--network", net, "-p", "127.0.0.1::15672"),
    )
    start = time.monotonic()
    try:
        wait_until(lambda: engine.inspect(name)["State"]["Health"]["Status"] == "healthy", 90, 1, what="healthy")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{engine.docker('logs', name)}") from None
    print(f"deckhand-rabbitmq: healthy {time.monotonic() - start:.1f} s after docker run")

    script = (
        "import pika\n"
        f"c = pika.BlockingConnection(pika.ConnectionParameters({name!r}))\n"
        "ch = c.channel(); ch.queue_declare('dh-test')\n"
        "ch.basic_publish('', 'dh-test', b'record')\n"
        "print(ch.basic_get('dh-test', auto_ack=True)[2].decode()); c.close()\n"
    )
    out = engine.docker("run", "--rm", "--network", net, python, "python", "-c", script)
    assert out == "record"

    port = engine.host_port(name, 15672)
    wait_for(f"http://127.0.0.1:{port}/api/overview", timeout=30, status=401)
    auth = {"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}
    status, body = http("GET", f"http://127.0.0.1:{port}/api/overview", headers=auth)
    assert status == 200
    assert json.loads(body)["management_version"]
