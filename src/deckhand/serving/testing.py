"""A real `deckhand serve` process for tests and benchmarks, and what they measure of it.

with ServeProcess(["--package", "model.dhpkg"], tmp / "serve.log") as server:
    server.wait_ready()
    ... requests to server.url ...
"""

from __future__ import annotations

from pathlib import Path

from deckhand.testing import DECKHAND, ChildProcess, GiveUp, free_port, wait_until


class ServeProcess(ChildProcess):
    """`deckhand serve ARGS` on a free loopback port, one worker unless ARGS say otherwise."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        super().__init__(log_path)
        self.args = args
        self.port = free_port()
        self.extra_env = env or {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        workers = [] if "--workers" in self.args else ["--workers", "1"]
        return [*DECKHAND, "serve", "--host", "127.0.0.1", "--port", str(self.port), *workers, *self.args]

    def env(self) -> dict[str, str]:
        return {**super().env(), **self.extra_env}

    def wait_ready(self, timeout: float = 60.0) -> None:
        import httpx

        def ready() -> bool:
            if not self.alive():
                raise GiveUp(f"deckhand serve exited:\n{self.output()[-3000:]}")
            return httpx.get(f"{self.url}/ping", timeout=2).status_code == 200

        try:
            wait_until(ready, timeout, what="deckhand serve answering /ping")
        except GiveUp:
            raise
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.output()[-3000:]}") from None
