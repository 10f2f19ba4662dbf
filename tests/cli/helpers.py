"""What the control-plane CLI tests share: JSON output parsed, and a stand-in agent thread
that reports what the control plane asks for. (The fixtures are in conftest.py.)"""

from __future__ import annotations

import json
import threading

from deckhand.client import ControlPlaneClient, ControlPlaneError

ADMIN = "dh_cli-admin-token-0123456789abcdef"


def as_json(result) -> object:  # type: ignore[no-untyped-def]
    return json.loads(result.stdout)


class StandInAgent(threading.Thread):
    """Long-polls the desired state and reports every active deployment as `state`."""

    def __init__(self, url: str, env_id: str, state: str = "ready", message: str = "") -> None:
        super().__init__(daemon=True)
        self.client = ControlPlaneClient(url, ADMIN)
        self.env_id, self.state, self.message = env_id, state, message
        self.stopping = threading.Event()

    def run(self) -> None:
        revision = None
        while not self.stopping.is_set():
            try:
                desired = self.client.desired_state(self.env_id, revision, timeout=1.0)
            except ControlPlaneError:
                return
            revision = desired["revision"]
            self.client.report_status(
                self.env_id,
                {"deployments": [
                    {"id": d["id"], "state": self.state, "modelId": d.get("servedModelId", d["modelId"]),
                     "message": self.message,
                     "predictionUrl": f"http://127.0.0.1:9/deployments/{d['id']}/predictions"}
                    for d in desired["deployments"] if d["active"]
                ]},
            )  # fmt: skip

    def __enter__(self) -> StandInAgent:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.join(5)
