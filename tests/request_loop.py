"""A client loop for end-to-end tests: predictions at a fixed rate through a proxy or an
Ingress while something changes behind it (a swap, a canary), counting every failure and
which model answered each request."""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
from collections import Counter

from deckhand.packages.demo import sample_rows

MODEL_HEADER = "x-deckhand-model-id"


class RequestLoop:
    """POSTs predictions at a fixed total rate from a few threads over keep-alive
    connections, counting every answer that is not a 200 (and every connection error) and
    which model answered (the `x-deckhand-model-id` header). `rows`: each request sends the
    next two of them (default: the same two rows every time)."""

    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        rate: float = 200.0,
        threads: int = 16,
        rows: list[dict[str, float]] | None = None,
    ):
        self.host, self.port, self.path = host, port, path
        self.interval = threads / rate
        self.threads = threads
        self.ok = 0
        self.failed = 0
        self.errors: list[str] = []
        self.answered_by: Counter[str] = Counter()
        rows = rows or sample_rows(2)
        self._bodies = [json.dumps(rows[i : i + 2]).encode() for i in range(0, len(rows), 2)]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self.started = 0.0
        self.seconds = 0.0

    def _work(self, first: int) -> None:
        bodies = itertools.islice(itertools.cycle(self._bodies), first % len(self._bodies), None)
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        next_at = time.monotonic()
        while not self._stop.is_set():
            model = None
            try:
                conn.request("POST", self.path, body=next(bodies), headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                payload = response.read()
                good = response.status == 200
                detail = f"HTTP {response.status}: {payload[:120]!r}"
                model = response.getheader(MODEL_HEADER, "<none>")
            except (OSError, http.client.HTTPException) as exc:
                good, detail = False, f"{type(exc).__name__}: {exc}"
                conn.close()
                conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
            with self._lock:
                if model is not None:
                    self.answered_by[model] += 1
                if good:
                    self.ok += 1
                else:
                    self.failed += 1
                    if len(self.errors) < 20:
                        self.errors.append(detail)
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # the loop's request rate
            else:
                next_at = time.monotonic()
        conn.close()

    def __enter__(self) -> RequestLoop:
        self.started = time.monotonic()
        for index in range(self.threads):
            worker = threading.Thread(target=self._work, args=(index * 7,), name=f"load-{index}", daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(15)
        self.seconds = time.monotonic() - self.started

    @property
    def rate(self) -> float:
        return (self.ok + self.failed) / self.seconds if self.seconds else 0.0
