"""A stopping agent does not wait for its network calls: the desired-state long poll and a
model package download both end at once when their task is cancelled. (A blocking call in a
worker thread kept the agent, and the interpreter that joins those threads, alive until it
returned: up to the long poll's 30 s.) The real processes: tests/cli/test_shutdown.py."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from deckhand.agent.artifacts import ArtifactCache, DownloadAborted
from deckhand.agent.model import DesiredDeployment
from deckhand.agent.sources import ControlPlaneSource
from deckhand.client import ControlPlaneClient
from deckhand.testing import wait_until_async


def test_long_poll_is_abandoned_at_once_when_cancelled() -> None:
    async def scenario() -> tuple[float, float]:
        asked = asyncio.Event()
        closed = asyncio.Event()

        async def never_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            asked.set()
            await reader.read()  # b"" once the client closes the connection
            closed.set()
            writer.close()

        server = await asyncio.start_server(never_answers, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        source = ControlPlaneSource(ControlPlaneClient(f"http://127.0.0.1:{port}", "dh_token"), "env-1")
        poll = asyncio.create_task(source.next_state(None, 30))
        await asyncio.wait_for(asked.wait(), 10)
        started = time.monotonic()
        poll.cancel()
        await asyncio.wait([poll], timeout=5)
        ended = time.monotonic() - started
        await asyncio.wait_for(closed.wait(), 5)
        seen_closed = time.monotonic() - started
        await source.aclose()
        server.close()
        await server.wait_closed()
        return ended, seen_closed

    ended, seen_closed = asyncio.run(scenario())
    assert ended < 0.5 and seen_closed < 0.5, (ended, seen_closed)


class SlowDownloadClient:
    """A download that would take 10 s, one chunk every 20 ms, reporting progress as the real one does."""

    def __init__(self) -> None:
        self.finished = threading.Event()
        self.error: BaseException | None = None
        self.chunks = 0

    def download_package(self, package_id: str, dest: Path, progress: Any = None) -> Path:
        try:
            for chunk in range(500):
                time.sleep(0.02)  # the pace of a slow download, not a wait for anything
                self.chunks += 1
                if progress:
                    progress(chunk + 1, 500)
            dest.write_bytes(b"whole")
            return dest
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            self.finished.set()


def test_download_is_abandoned_at_its_next_chunk_when_cancelled(tmp_path: Path) -> None:
    client = SlowDownloadClient()
    cache = ArtifactCache(tmp_path / "packages", client)
    desired = DesiredDeployment(id="d1", model_id="m1")

    async def scenario() -> None:
        task = asyncio.create_task(cache.path_for(desired))
        await wait_until_async(lambda: client.chunks > 0, 10, 0.01, what="the download under way")
        task.cancel()
        await asyncio.wait([task])

    started = time.monotonic()
    asyncio.run(scenario())  # returns only once the download thread has ended
    assert client.finished.wait(5)
    assert time.monotonic() - started < 1.0
    assert isinstance(client.error, DownloadAborted)
    assert not (tmp_path / "packages" / "m1.dhpkg").exists()
