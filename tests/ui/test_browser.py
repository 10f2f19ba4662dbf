"""The web UI in a real headless Chromium (Debian's package, driven by Playwright) against real processes.

A `deckhand server` control plane, a `deckhand serve` prediction server writing monitoring
records to a spool directory and a `deckhand tracking-agent` carrying them to the control
plane, all on loopback. The test logs in through the form, opens the deployment, sends a
burst of predictions and waits for the page's own polling to show it in the charts. Another
drives the rollout buttons as an admin: promote a canary, then roll back. Another sends a
test message from the Notifications page to a real webhook receiver that checks its signature.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deckhand import deployment_dirs
from deckhand.client import ControlPlaneClient
from deckhand.server.testing import ServerProcess
from deckhand.testing import GiveUp, free_port, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
BURST = 30
ROWS_PER_REQUEST = 3
SCREENSHOT = "ui-deployment.png"
ROLLOUT_SCREENSHOT = "ui-rollout.png"
NOTIFICATIONS_SCREENSHOT = "ui-notifications.png"


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} missing: Debian's chromium could not be installed (scripts/setup/70-browser.sh)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - the test extra installs it
        pytest.fail("playwright is not installed: pip install -e '.[test]' (scripts/setup/20-python.sh)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield browser
        finally:
            browser.close()


class Child:
    """A `deckhand ...` command as a child process, its output in a log file; stopped by pid."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "deckhand.cli", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )

    def check_running(self) -> None:
        if self.process.poll() is not None:
            raise GiveUp(f"{self.log.name} exited with {self.process.returncode}:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def _wait_http(url: str, child: Child, timeout: float = 60.0) -> None:
    def answering() -> bool:
        child.check_running()
        return httpx.get(url, timeout=2.0).status_code == 200

    wait_until(answering, timeout, 0.2, what=f"{url} to answer (see {child.log})")


def test_deployment_page_charts_follow_a_burst_of_predictions(
    tmp_path: Path, chromium: object, demo_package: Path, repo_root: Path
) -> None:
    from deckhand.packages.demo import sample_rows

    admin = "dh_" + secrets.token_urlsafe(24)
    children: list[Child] = []
    with ServerProcess(tmp_path / "control-plane", bootstrap_token=admin, log_path=tmp_path / "cp.log") as cp:
        try:
            client = ControlPlaneClient(cp.url, admin)
            env = client.create_environment(name="browser-env", platform="test", monitoringEnabled=True)
            package = client.upload_package(demo_package)
            dep = client.create_deployment(name="iris-ui", environment_id=env["id"], model_package_id=package["id"])
            viewer = client.create_token("ui-viewer", "read-only")["token"]

            # A real prediction server with monitoring on, and the model in its models dir (as the
            # agent's filesystem plugin installs it).
            spool = tmp_path / "spool"
            port = free_port()
            serve = Child(
                ["serve", "--models-dir", str(tmp_path / "models"), "--port", str(port),
                 "--monitoring", f"spool:{spool}", "--log-level", "warning"],
                tmp_path / "serve.log",
            )  # fmt: skip
            children.append(serve)
            (tmp_path / "models").mkdir(exist_ok=True)
            deployment_dirs.install(tmp_path / "models", dep["id"], dep["id"], package["id"], demo_package)
            serve_url = f"http://127.0.0.1:{port}"
            _wait_http(f"{serve_url}/ping", serve)
            wait_until(
                lambda: httpx.get(f"{serve_url}/deployments/{dep['id']}/info").json()["state"] == "ready",
                60,
                what="the model loaded",
            )
            prediction_url = f"{serve_url}/deployments/{dep['id']}/predictions"
            # What the management agent reports once the deployment is up.
            client.report_status(
                env["id"],
                {
                    "environment": {"status": "passing", "message": "prediction server up"},
                    "deployments": [
                        {"id": dep["id"], "state": "ready", "modelId": package["id"], "predictionUrl": prediction_url}
                    ],
                },
            )
            tracker = Child(
                ["tracking-agent", "--channel", f"spool:{spool}", "--server", cp.url, "--flush-interval", "0.5"],
                tmp_path / "tracking-agent.log",
                env={"DECKHAND_TOKEN": admin},  # not on the command line, where `ps` would show it
            )
            children.append(tracker)

            page = chromium.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
            page.set_default_timeout(30_000)

            # Logged out: the root sends us to the login form. A wrong token gets a clear message.
            page.goto(cp.url + "/")
            assert page.url.startswith(cp.url + "/ui/login")
            page.fill("#token", "dh_this-token-does-not-exist")
            page.click("#login-submit")
            assert "not accepted" in page.inner_text("#login-error")

            # A read-only token is enough to look around.
            page.fill("#token", viewer)
            page.click("#login-submit")
            page.wait_for_url(cp.url + "/ui/deployments")
            row = page.locator(f'tr[data-id="{dep["id"]}"]')
            assert row.locator('[data-state="ready"]').count() == 1
            assert prediction_url in row.inner_text()
            assert package["id"] in row.inner_text()
            assert viewer not in page.content()

            page.click(f'a[href="/ui/deployments/{dep["id"]}"]')
            page.wait_for_url(f"{cp.url}/ui/deployments/{dep['id']}")
            assert page.get_attribute("#total-requests", "data-value") == "0"
            assert page.locator("#events li[data-action='deployment.create']").count() == 1

            # The burst: real requests to the prediction server while the page is open.
            with httpx.Client(timeout=30) as http:
                for i in range(BURST):
                    response = http.post(prediction_url, json=sample_rows(ROWS_PER_REQUEST, seed=i))
                    assert response.status_code == 200, response.text

            # The page polls its live panel; wait until the totals show the whole burst.
            tracker.check_running()
            page.wait_for_function(
                f"() => document.getElementById('total-requests')?.dataset.value === '{BURST}'",
                timeout=120_000,
            )
            assert page.get_attribute("#total-rows", "data-value") == str(BURST * ROWS_PER_REQUEST)
            assert int(page.get_attribute("#live", "data-refreshes") or 0) >= 1
            assert "Live: refreshed" in page.inner_text("#live-status")

            requests_series = page.locator('#chart-requests g[data-series="requests"]')
            assert requests_series.get_attribute("data-sum") == str(BURST)
            assert page.locator("#chart-requests polyline").count() >= 1
            assert page.locator("#chart-requests circle.point").count() >= 1
            assert int(page.get_attribute('#chart-latency g[data-series="p50"]', "data-points") or 0) >= 1
            assert int(page.get_attribute('#chart-latency g[data-series="p99"]', "data-points") or 0) >= 1
            assert page.get_attribute('#chart-errors g[data-series="system errors (5xx)"]', "data-sum") == "0"
            # Drift per feature: one bar per iris feature, against the first window of data.
            drift_rows = page.locator("#chart-drift g.bar-row")
            assert drift_rows.count() == 4
            assert page.locator("#chart-drift rect.bar").count() == 4
            assert page.locator("#chart-predictions rect.bar").count() >= 1
            assert page.locator("svg.chart-svg").first.is_visible()
            # Each feature's bins, in a <details> that stays open across refreshes.
            page.click("#drift details.features summary")
            assert page.locator("#drift details.features figure.chart").count() == 4
            seen = int(page.get_attribute("#live", "data-refreshes") or 0)
            page.wait_for_function(
                f"() => Number(document.getElementById('live').dataset.refreshes) > {seen}", timeout=30_000
            )
            assert page.locator("#drift details.features[open]").count() == 1
            assert page.get_attribute("#total-requests", "data-value") == str(BURST)  # nothing counted twice

            artifacts = repo_root / "test-artifacts"
            artifacts.mkdir(exist_ok=True)
            shot = artifacts / SCREENSHOT
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            print(f"\nscreenshot: {shot}")

            # Logging out forgets the token: the pages ask for it again.
            page.click("#logout")
            page.wait_for_url(cp.url + "/ui/login?reason=loggedout")
            page.goto(f"{cp.url}/ui/deployments/{dep['id']}")
            assert page.url.startswith(cp.url + "/ui/login")

            # A token revoked while its page is open: the next refresh leads back to the login form.
            short_lived = client.create_token("ui-short-lived", "read-only")["token"]
            page.fill("#token", short_lived)
            page.click("#login-submit")
            page.wait_for_url(f"{cp.url}/ui/deployments/{dep['id']}")  # the page we asked for before
            client.delete_token("ui-short-lived")
            page.wait_for_url(f"{cp.url}/ui/login?reason=expired**", timeout=30_000)
            assert "no longer accepted" in page.inner_text("#login-message")
            page.close()
        finally:
            for child in reversed(children):
                child.stop()


def test_admin_promotes_a_canary_and_rolls_back_from_the_page(
    tmp_path: Path, chromium: object, demo_package: Path, second_package: Path, repo_root: Path
) -> None:
    admin = "dh_" + secrets.token_urlsafe(24)
    with ServerProcess(tmp_path / "control-plane", bootstrap_token=admin, log_path=tmp_path / "cp.log") as cp:
        client = ControlPlaneClient(cp.url, admin)
        env = client.create_environment(name="rollout-env", platform="test")
        champion = client.upload_package(demo_package)
        candidate = client.upload_package(second_package)
        challenger = client.upload_package(second_package)  # the same file again: a package of its own
        dep = client.create_deployment(name="iris-canary", environment_id=env["id"], model_package_id=champion["id"])
        # No gates, and a step an hour away: the canary holds at 20 % for the whole test.
        client.start_canary(dep["id"], candidate["id"], {"percent": 20, "intervalSeconds": 3600})
        client.add_challenger(dep["id"], challenger["id"])

        page = chromium.new_page(viewport={"width": 1280, "height": 1000})  # type: ignore[attr-defined]
        page.set_default_timeout(30_000)
        answers: list[bool] = []  # what the confirm() dialogs of ui.js are answered, in order
        page.on("dialog", lambda dialog: dialog.accept() if answers.pop(0) else dialog.dismiss())

        page.goto(f"{cp.url}/ui/deployments/{dep['id']}")
        page.fill("#token", admin)
        page.click("#login-submit")
        page.wait_for_url(f"{cp.url}/ui/deployments/{dep['id']}")

        # The split, the gates (none), the models side by side, and the admin's buttons.
        assert page.get_attribute("#rollout-running", "data-percent") == "20"
        assert page.get_attribute('#chart-split g[data-label="champion"]', "data-value") == "80"
        assert page.get_attribute('#chart-split g[data-label="canary"]', "data-value") == "20"
        assert "steps up on time alone" in page.inner_text("#rollout-no-gates")
        assert page.locator("#model-table tr[data-role]").count() == 3
        assert page.locator(f'#model-table tr[data-model-id="{challenger["id"]}"][data-role="challenger"]').count() == 1
        assert page.locator(f"#promote-challenger-{challenger['id']}").is_disabled()  # not while a canary runs
        assert page.locator("#abort-canary").is_visible()
        artifacts = repo_root / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        page.screenshot(path=str(artifacts / ROLLOUT_SCREENSHOT), full_page=True)
        print(f"\nscreenshot of the running canary: {artifacts / ROLLOUT_SCREENSHOT}")

        # Saying no to the confirmation changes nothing.
        answers.append(False)
        page.click("#abort-canary")
        assert client.get_rollout(dep["id"])["state"] == "running"

        answers.append(True)
        page.click("#promote-canary")
        page.wait_for_selector('#flash[data-kind="ok"]')
        assert "Promoted the canary" in page.inner_text("#flash")
        assert page.locator('#revisions tr[data-number="2"][aria-current="true"]').count() == 1
        assert candidate["id"] in page.inner_text('#revisions tr[data-number="2"]')
        assert page.locator("#no-running-canary").is_visible()
        assert page.locator("#rollouts-ended tr[data-state='promoted']").count() == 1
        assert client.get_deployment(dep["id"])["rollout"] is None

        # Roll back to revision 1, with a reason and a note: revision 3 runs the first model again.
        row = page.locator('#revisions tr[data-number="1"]')
        row.locator('select[name="reason"]').select_option("errors")
        row.locator('input[name="note"]').fill("back to the first model, from the browser")
        answers.append(True)
        page.click("#rollback-1")
        page.wait_for_selector('#revisions tr[data-number="3"][aria-current="true"]')
        assert page.get_attribute("#flash", "data-kind") == "ok"
        current = page.inner_text('#revisions tr[data-number="3"]')
        assert champion["id"] in current and "errors" in current and "from the browser" in current
        assert client.list_revisions(dep["id"])[0]["modelPackageId"] == champion["id"]

        # The challengers' copy share, set with the page's form.
        assert page.get_attribute("#copy-percent", "data-value") == "100.0"
        page.fill('#copy-share input[name="percent"]', "20")
        page.click("#set-copy-share")
        page.wait_for_selector('#copy-percent[data-value="20.0"]')
        assert "copies of 20 % of requests now" in page.inner_text("#flash")
        assert client.get_deployment(dep["id"])["challengerCopyPercent"] == 20.0

        # Promote the challenger with a reason and a note. The live panel holding its form
        # refreshes every few seconds, but holds still while the form is being filled in.
        row = page.locator(f'#model-table tr[data-model-id="{challenger["id"]}"]')
        row.locator('select[name="reason"]').select_option("accuracy")
        row.locator('input[name="note"]').fill("agrees better, from the browser")
        refreshes = page.get_attribute("#live", "data-refreshes")
        page.locator("body").click(position={"x": 5, "y": 5})  # focus leaves the form; its values stay
        page.wait_for_selector("#live-status:has-text('paused while you fill in a form')")
        assert page.get_attribute("#live", "data-refreshes") == refreshes
        assert row.locator('input[name="note"]').input_value() == "agrees better, from the browser"
        answers.append(True)
        page.click(f"#promote-challenger-{challenger['id']}")
        page.wait_for_selector('#revisions tr[data-number="4"][aria-current="true"]')
        assert "Promoted the challenger" in page.inner_text("#flash")
        current = page.inner_text('#revisions tr[data-number="4"]')
        assert challenger["id"] in current and "accuracy" in current and "agrees better" in current
        assert client.list_challengers(dep["id"]) == []
        assert answers == []  # every button asked once

        page.close()


def test_accuracy_panel_shows_what_scikit_learn_computes(tmp_path: Path, chromium: object, demo_package: Path) -> None:
    """Predictions by association id of two models and their actuals, in through the API as
    a tracking agent and `deckhand actuals upload` send them; a read-only user sees each
    model's RMSE, MAE and R² as scikit-learn computes them, and a line per model."""
    import numpy as np
    from sklearn import metrics as skm

    from deckhand.monitoring.records import scored_record

    admin = "dh_" + secrets.token_urlsafe(24)
    with ServerProcess(tmp_path / "control-plane", bootstrap_token=admin, log_path=tmp_path / "cp.log") as cp:
        client = ControlPlaneClient(cp.url, admin)
        env = client.create_environment(name="accuracy-env", platform="test")
        package = client.upload_package(demo_package)
        dep = client.create_deployment(name="accuracy-ui", environment_id=env["id"], model_package_id=package["id"])
        viewer = client.create_token("ui-accuracy-viewer", "read-only")["token"]

        rng = np.random.default_rng(20)
        n = 400
        truth = rng.normal(30, 6, n).round(3)
        ids = [f"a-{i}" for i in range(n)]
        predicted = {  # the champion (the deployment's package) and another model, on part of the rows
            package["id"]: (truth + rng.normal(0, 2, n)).round(3),
            "challenger-b": (truth[:150] * 0.9 + 4).round(3),
        }
        now = time.time() - 60  # in the page's default window (the last hour): one hourly point
        with httpx.Client(base_url=cp.url, headers={"Authorization": f"Bearer {admin}"}, timeout=30) as api:
            records = [
                scored_record(dep["id"], model, ids[: len(values)], values.tolist(), timestamp=now)
                for model, values in predicted.items()
            ]
            response = api.post("/api/v1/monitoring/batches", json={"batchId": "accuracy-ui", "records": records})
            assert response.status_code == 200, response.text
            actuals = [{"associationId": i, "actualValue": float(t)} for i, t in zip(ids, truth, strict=True)]
            response = api.post(f"/api/v1/deployments/{dep['id']}/actuals", json={"data": actuals})
            assert response.status_code == 200, response.text
            assert response.json()["matched"] == n

        page = chromium.new_page(viewport={"width": 1280, "height": 1000})  # type: ignore[attr-defined]
        page.set_default_timeout(30_000)
        page.goto(f"{cp.url}/ui/deployments/{dep['id']}")
        page.fill("#token", viewer)
        page.click("#login-submit")
        page.wait_for_url(f"{cp.url}/ui/deployments/{dep['id']}")

        tables = page.locator("#accuracy table.accuracy-table")
        assert tables.count() == 2
        assert tables.first.get_attribute("data-model-id") == package["id"]  # the champion first
        assert tables.first.get_attribute("data-champion") == "true"
        series = page.locator("#chart-accuracy-regression g.series")
        assert series.count() == 2  # one line per model
        assert series.first.get_attribute("data-series") == package["id"]
        assert "s-champion" in (series.first.get_attribute("class") or "")
        for model, values in predicted.items():
            actual = truth[: len(values)]
            rmse = float(np.sqrt(skm.mean_squared_error(actual, values)))
            expected = {
                "matched": f"{len(values):,}",
                "rmse": f"{rmse:.4f}",
                "mae": f"{skm.mean_absolute_error(actual, values):.4f}",
                "r2": f"{skm.r2_score(actual, values):.4f}",
            }
            table = page.locator(f'#accuracy table.accuracy-table[data-model-id="{model}"]')
            shown = {key: table.locator(f'td[data-metric="{key}"]').inner_text() for key in expected}
            assert shown == expected, model
            line = page.locator(f'#chart-accuracy-regression g.series[data-series="{model}"]')
            assert line.get_attribute("data-points") == "1"
            assert float(line.get_attribute("data-sum") or "nan") == pytest.approx(rmse, abs=1e-4)
        assert page.locator("#accuracy-empty").count() == 0
        page.close()


def test_api_docs_render_offline(tmp_path: Path, chromium: object) -> None:
    """/docs draws every operation with nothing but the control plane to load from (the
    page used to fetch Swagger UI from a public CDN and showed nothing offline)."""
    admin = "dh_" + secrets.token_urlsafe(32)
    with ServerProcess(tmp_path / "control-plane", bootstrap_token=admin, log_path=tmp_path / "cp.log") as cp:
        page = chromium.new_page()  # type: ignore[attr-defined]
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        blocked: list[str] = []
        page.on("console", lambda message: blocked.append(message.text) if "Security Policy" in message.text else None)
        page.goto(cp.url + "/docs")
        page.wait_for_selector(".opblock", timeout=30_000)
        operations = page.locator(".opblock").count()
        page.close()
        spec = httpx.get(cp.url + "/openapi.json").json()
    assert operations == sum(len(methods) for methods in spec["paths"].values()) > 20
    assert all(url.startswith(cp.url) for url in requested), [u for u in requested if not u.startswith(cp.url)]
    assert blocked == []


def test_admin_sends_a_test_message_from_the_notifications_page(
    tmp_path: Path, chromium: object, repo_root: Path
) -> None:
    """A webhook channel whose key only the receiver and the control plane know: the button
    sends a test message that the receiver verifies (HMAC-SHA256), and the page says so."""
    from tests.notifications.receivers import WebhookReceiver

    admin = "dh_" + secrets.token_urlsafe(24)
    key = secrets.token_urlsafe(24)
    with (
        ServerProcess(tmp_path / "control-plane", bootstrap_token=admin, log_path=tmp_path / "cp.log") as cp,
        WebhookReceiver(secret=key) as receiver,
    ):
        client = ControlPlaneClient(cp.url, admin)
        hook = client.create_notification_channel({"name": "ops-hook", "kind": "webhook", "url": receiver.url,
                                                   "secret": key})  # fmt: skip
        client.create_notification_policy({"name": "failed-actions", "kind": "deployment_action",
                                           "channelIds": [hook["id"]]})  # fmt: skip

        page = chromium.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
        page.set_default_timeout(30_000)
        page.goto(f"{cp.url}/ui/notifications")
        page.fill("#token", admin)
        page.click("#login-submit")
        page.wait_for_url(f"{cp.url}/ui/notifications")
        row = page.locator(f'#channels tr[data-id="{hook["id"]}"]')
        assert receiver.url in row.inner_text() and "signed" in row.inner_text()
        assert key not in page.content()
        assert page.locator("#deliveries").count() == 0  # nothing sent yet

        page.click(f"#test-{hook['id']}")
        page.wait_for_selector("#flash")
        assert page.get_attribute("#flash", "data-kind") == "ok"
        assert page.inner_text("#flash") == "sent a test message to ops-hook"
        (received,) = receiver.received
        assert received.signed is True and received.body["kind"] == "test"
        sent = page.locator('#deliveries tr[data-state="sent"]')
        assert sent.count() == 1 and "test message to ops-hook" in sent.inner_text()
        assert page.locator("#deliveries tbody tr").count() == 1

        artifacts = repo_root / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        page.screenshot(path=str(artifacts / NOTIFICATIONS_SCREENSHOT), full_page=True)
        page.close()
    assert len(receiver.received) == 1  # the dispatch loop sent nothing twice
