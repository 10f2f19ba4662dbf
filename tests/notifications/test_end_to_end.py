"""Notifications end to end: a real `deckhand server` evaluating every half second, a real
webhook receiver that checks each HMAC, a real SMTP server with STARTTLS; channels and
policies made with the CLI. A drifted input batch and an accuracy drop each notify exactly
once on each channel, however many rounds see them, and the CLI's test message arrives."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from deckhand.client.control_plane import ControlPlaneClient
from deckhand.monitoring.aggregate import Aggregator
from deckhand.monitoring.records import data_record, scored_record
from deckhand.packages.demo import sample_rows
from deckhand.server.testing import ServerProcess

from .receivers import SmtpReceiver, WebhookReceiver

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
TOKEN = "dh_notifications-e2e-admin-token-0123456789"
SECRET = "e2e-webhook-secret-0123456789"


def _cli(url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deckhand.cli", *args, "--server", url, "--token", TOKEN],
        capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_drift_and_an_accuracy_drop_notify_once_per_interval(tmp_path: Path, demo_package: Path) -> None:
    server = ServerProcess(tmp_path / "cp", bootstrap_token=TOKEN, log_path=tmp_path / "cp.log",
                           extra_args=["--notify-tick-seconds", "0.5"])  # fmt: skip
    with WebhookReceiver(secret=SECRET) as hook, SmtpReceiver(tmp_path) as smtp:
        server.start()
        try:
            url = server.url
            client = ControlPlaneClient(url, TOKEN)
            package = client.upload_package(demo_package)
            env = client.create_environment(name="notify-e2e", platform="test")
            dep = client.create_deployment(name="iris", environment_id=env["id"], model_package_id=package["id"])
            secrets = {"HOOK_SECRET": SECRET, "SMTP_PASSWORD": smtp.password}
            made = [
                _cli(url, "notifications", "channel-add", "hook", "--kind", "webhook", "--url", hook.url,
                     "--secret-env", "HOOK_SECRET", env=secrets),
                _cli(url, "notifications", "channel-add", "mail", "--kind", "email", "--host", "127.0.0.1",
                     "--port", str(smtp.port), "--sender", "deckhand@example.org", "--to", "oncall@example.org",
                     "--username", smtp.user, "--ca-file", str(smtp.cert), "--secret-env", "SMTP_PASSWORD",
                     env=secrets),
                _cli(url, "notifications", "policy-add", "drift", "--kind", "drift", "--deployment", dep["id"],
                     "--set", "threshold=0.2", "--channel", "hook", "--channel", "mail"),
                _cli(url, "notifications", "policy-add", "accuracy", "--kind", "accuracy", "--deployment", dep["id"],
                     "--set", "metric=accuracy", "--set", "threshold=0.8", "--channel", "hook", "--channel", "mail"),
            ]  # fmt: skip
            for done in made:
                assert done.returncode == 0, done.stderr
            test = _cli(url, "notifications", "test", "hook")
            assert test.returncode == 0 and "sent a test message" in test.stdout, test.stderr
            assert hook.wait_for(1)[0].body["kind"] == "test"

            # a drifted input batch, and predictions whose late actuals say 60 % were right
            rows = sample_rows(100, seed=4)
            for row in rows:
                row["petal_length"] = 40.0
            names = ["setosa", "versicolor", "virginica"]
            ids = [f"e2e-{i}" for i in range(100)]
            aggregator = Aggregator()
            now = time.time() - 60
            for i in range(0, 100, 20):
                aggregator.add("e2e", data_record(dep["id"], package["id"], rows[i : i + 20], ["setosa"] * 20,
                                                  timestamp=now))  # fmt: skip
            probabilities = np.tile([0.7, 0.2, 0.1], (100, 1)).tolist()
            aggregator.add("e2e", scored_record(dep["id"], package["id"], ids, probabilities, names, now))
            client.post_monitoring_batch("e2e-1", aggregator.drain())
            actuals = "associationId,actualValue\n" + "".join(
                f"{i},{'setosa' if n < 60 else 'virginica'}\n" for n, i in enumerate(ids)
            )
            client.upload_actuals(dep["id"], actuals.encode())

            received = hook.wait_for(3, timeout=30)
            mails = smtp.wait_for(2, timeout=30)
            time.sleep(3)  # six more evaluation rounds: the conditions still hold, nothing more is sent
            deliveries = client.notification_deliveries()
            client.close()
        finally:
            server.stop()
    notified = sorted(r.body["policy"] for r in hook.received[1:])
    assert notified == ["accuracy", "drift"] and len(hook.received) == 3, [r.body for r in hook.received]
    assert all(r.signed for r in received)
    assert sorted(m["Subject"] for m in smtp.messages) == ["[deckhand] accuracy: accuracy", "[deckhand] drift: drift"]
    assert len(smtp.messages) == len(mails) == 2 and smtp.tls_used == [True, True]
    accuracy = next(r.body for r in hook.received if r.body["policy"] == "accuracy")
    assert accuracy["value"] == pytest.approx(0.6) and accuracy["deploymentId"] == dep["id"]
    assert "petal_length" in next(r.body["text"] for r in hook.received if r.body["policy"] == "drift")
    assert sorted(d["state"] for d in deliveries) == ["sent"] * 5
    log = (tmp_path / "cp.log").read_text()
    assert SECRET not in log and smtp.password not in log
