"""Channels against the real thing: a spool directory on disk and a real RabbitMQ broker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deckhand.monitoring.channels import ChannelConfigError, ChannelError, channel_from_spec
from deckhand.monitoring.channels.rabbitmq import RabbitMQChannel, mask_amqp_url
from deckhand.monitoring.channels.spool import SpoolChannel


def _records(n: int, start: int = 0) -> list[dict]:
    return [{"deploymentId": "d1", "ts": 1_763_740_000.0, "requests": 1, "rows": 1, "seq": start + i} for i in range(n)]


# ----- spool -----------------------------------------------------------------------------------


def test_spool_roundtrip_and_ack(tmp_path: Path) -> None:
    channel = channel_from_spec(f"spool:{tmp_path}")
    channel.publish(_records(5))
    channel.publish(_records(5, 5))
    deliveries = channel.read(100, timeout=1)
    assert [r["seq"] for d in deliveries for r in d.records] == list(range(10))
    assert len({d.source_id for d in deliveries}) == 2
    assert channel.read(100, timeout=0.1) == []  # in flight: not handed out twice
    channel.close()  # a crash before the ack: a new reader gets the same files, same ids
    channel = channel_from_spec(f"spool:{tmp_path}")
    again = channel.read(100, timeout=0.1)
    assert [d.source_id for d in again] == [d.source_id for d in deliveries]
    channel.ack(again)
    assert channel.read(100, timeout=0.1) == []
    channel.close()


def test_spool_rotates_by_size_and_bounds_file_count(tmp_path: Path) -> None:
    channel = channel_from_spec(f"spool:{tmp_path}?maxFileBytes=2048&maxFiles=5")
    assert isinstance(channel, SpoolChannel)
    channel.publish(_records(40))  # ~80 bytes a line -> 2 files of <= 2048 bytes
    files = sorted(p for p in tmp_path.iterdir() if p.suffix == ".jsonl")
    assert len(files) >= 2 and all(p.stat().st_size <= 2048 for p in files)
    with pytest.raises(ChannelError, match="maxFiles=5"):
        for _ in range(10):
            channel.publish(_records(40))
    total = sum(len(d.records) for d in channel.read(10_000, timeout=0.1))
    assert total % 40 == 0 and total <= 5 * 40  # whole publishes only, never a torn file


def test_spool_files_appear_whole(tmp_path: Path) -> None:
    """A reader never sees a half-written file: temp names are hidden until the rename."""
    channel = SpoolChannel(tmp_path)
    stale = tmp_path / ".00001-1-000001.jsonl.tmp"
    stale.write_bytes(b'{"deploymentId": "d1", "ts": 1')  # a writer died mid-write
    os.utime(stale, (1, 1))
    channel.publish(_records(3))
    deliveries = channel.read(100, timeout=0.1)
    assert [len(d.records) for d in deliveries] == [3]
    assert not stale.exists()  # the reader cleaned the stale temp file


def test_spool_single_reader(tmp_path: Path) -> None:
    first, second = SpoolChannel(tmp_path), SpoolChannel(tmp_path)
    first.read(1, timeout=0)
    with pytest.raises(ChannelConfigError, match="already read by another tracking agent"):
        second.read(1, timeout=0)
    first.close()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("spool:relative/dir", "absolute path"),
        ("spool:/tmp/x?maxFiles=abc", "integers"),
        ("spool:/tmp/x?colour=red", "unknown option"),
        ("kafka://broker:9092", "unknown kind 'kafka'"),
        ("amqp://", "expected amqp://user:pass@host"),
    ],
)
def test_bad_specs_say_what_to_fix(spec: str, message: str) -> None:
    with pytest.raises(ChannelConfigError, match=message):
        channel_from_spec(spec)


def test_amqp_password_is_masked() -> None:
    channel = channel_from_spec("amqp://user:s3cret-pw@127.0.0.1:1/%2F?queue=q")
    assert "s3cret-pw" not in channel.describe() and "****" in channel.describe()
    assert mask_amqp_url("amqp://u:p4ss@h/") == "amqp://u:****@h/"
    with pytest.raises(ChannelError) as info:  # nothing listens on port 1
        channel.publish(_records(1))
    assert "s3cret-pw" not in str(info.value)


# ----- RabbitMQ -------------------------------------------------------------------------------


@pytest.mark.rabbitmq
def test_rabbitmq_roundtrip_ack_and_redelivery(rabbitmq) -> None:  # type: ignore[no-untyped-def]
    spec = rabbitmq.spec(queue="t-roundtrip")
    writer = channel_from_spec(spec)
    writer.publish(_records(3))
    writer.publish(_records(4, 3))
    reader = channel_from_spec(spec)
    first = reader.read(100, timeout=5)
    assert sum(len(d.records) for d in first) == 7
    reader.close()  # crash before ack: the broker redelivers, with the same message ids
    reader = channel_from_spec(spec)
    second = reader.read(100, timeout=5)
    assert [d.source_id for d in second] == [d.source_id for d in first]
    reader.ack(second)
    reader.close()
    assert isinstance(writer, RabbitMQChannel)
    assert writer.queue_depth() == 0
    writer.close()


@pytest.mark.rabbitmq
def test_rabbitmq_messages_survive_a_broker_restart(rabbitmq) -> None:  # type: ignore[no-untyped-def]
    spec = rabbitmq.spec(queue="t-durable")
    writer = channel_from_spec(spec)
    writer.publish(_records(10))  # confirmed, persistent, durable queue
    writer.close()
    rabbitmq.stop()
    rabbitmq.start()
    reader = channel_from_spec(spec)
    deliveries = reader.read(100, timeout=10)
    assert [r["seq"] for d in deliveries for r in d.records] == list(range(10))
    reader.ack(deliveries)
    reader.close()
