"""Accuracy end to end on the local platform: a deployment with association ids -> the agent
runs its mix -> the prediction server returns ids and reports predictions through the
spool channel and the tracking agent -> actuals arrive late, from the CLI -> the accuracy the
control plane reports is scikit-learn's on the same rows."""

from __future__ import annotations

import asyncio
import csv
import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn import metrics as skm

from deckhand.client.control_plane import ControlPlaneClient
from deckhand.packages import load_model
from deckhand.packages.demo import sample_rows
from deckhand.serving.codecs import decode
from deckhand.testing import wait_until, wait_until_async

from .conftest import ADMIN_TOKEN

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_predictions_with_ids_then_late_actuals_give_scikit_learns_accuracy(
    tmp_path: Path, control_plane, demo_package, second_package
) -> None:  # type: ignore[no-untyped-def]
    from deckhand.agent.config import AgentSettings, EnvironmentSettings
    from deckhand.agent.runtime import EnvironmentAgent
    from deckhand.agent.sources import ControlPlaneSource

    client = ControlPlaneClient(control_plane.url, ADMIN_TOKEN)
    env = client.create_environment(name="local-accuracy", platform="local")
    package = client.upload_package(demo_package)
    challenger = client.upload_package(second_package)
    settings = AgentSettings(
        url=control_plane.url, token=ADMIN_TOKEN, work_dir=tmp_path / "agent", long_poll_timeout=5, resync_interval=5
    )
    rows = sample_rows(60, seed=11)

    async def scenario() -> tuple[str, list[dict], list[dict]]:
        agent = EnvironmentAgent(
            settings,
            ControlPlaneSource(client, env["id"]),
            env_settings=EnvironmentSettings(id=env["id"]),
            client=client,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        try:
            dep = await asyncio.to_thread(
                client.create_deployment,
                name="iris-acc",
                environment_id=env["id"],
                model_package_id=package["id"],
                association_id={"column": "id", "generate": True},
            )
            assert dep["servedModelId"].startswith("mix-")
            assert dep["associationId"] == {"column": "id", "generate": True}
            await asyncio.to_thread(client.add_challenger, dep["id"], challenger["id"])
            served = (await asyncio.to_thread(client.get_deployment, dep["id"]))["servedModelId"]
            assert served != dep["servedModelId"]  # the mix now holds the challenger too

            async def ready_url() -> str | None:
                observed = (await asyncio.to_thread(client.get_deployment, dep["id"])).get("observed") or {}
                ok = observed.get("state") == "ready" and observed.get("modelId") == served
                return observed.get("predictionUrl") if ok else None

            url = await wait_until_async(ready_url, 120, 0.2, what="the deployment ready with its mix")
            answers: list[dict] = []
            async with httpx.AsyncClient(timeout=10) as http:
                for start in range(0, 50, 10):  # ids from the request
                    body = [{**row, "id": f"r{start + i}"} for i, row in enumerate(rows[start : start + 10])]
                    response = await http.post(url, json=body)
                    assert response.status_code == 200, response.text
                    answers += response.json()["data"]
                generated = await http.post(url, json=rows[50:60])  # no ids: generated and returned
                assert generated.status_code == 200
                answers += generated.json()["data"]
                as_csv = await http.post(
                    url,
                    content="sepal_length,sepal_width,petal_length,petal_width,id\n5.1,3.5,1.4,0.2,csv-1\n",
                    headers={"Content-Type": "text/csv", "Accept": "text/csv"},
                )
                assert as_csv.status_code == 200 and as_csv.text.splitlines()[1].startswith("0,csv-1,")

            async def challenger_scored() -> bool:  # its copies are scored off the request path
                found = await asyncio.to_thread(client.model_monitoring, dep["id"])
                return any(m["modelId"] == challenger["id"] and m["requests"] >= 6 for m in found["models"])

            await wait_until_async(challenger_scored, 60, 0.5, what="the challenger's copies reported")
            return dep["id"], answers, rows
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)

    dep_id, answers, _ = asyncio.run(scenario())
    ids = [a["associationId"] for a in answers]
    assert ids[:50] == [f"r{i}" for i in range(50)]
    assert len(set(ids[50:])) == 10 and all(len(i) == 32 for i in ids[50:])

    # the truth: the model's own answer for most rows, another class for every fifth
    names = [v["label"] for v in answers[0]["predictionValues"]]
    truth = [a["prediction"] if i % 5 else names[(names.index(a["prediction"]) + 1) % 3] for i, a in enumerate(answers)]
    actuals = tmp_path / "actuals.csv"
    with open(actuals, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row_key", "label"])
        writer.writerows(zip(ids, truth, strict=True))
        writer.writerow(["", "setosa"])  # rejected: no id
    upload = subprocess.run(
        [sys.executable, "-m", "deckhand.cli", "actuals", "upload", str(actuals), "--deployment", dep_id,
         "--id-column", "row_key", "--value-column", "label", "--rows-per-request", "25",
         "--server", control_plane.url, "--token", ADMIN_TOKEN, "--output", "json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    summary = json.loads(upload.stdout)
    assert upload.returncode == 1 and summary["rejectedCount"] == 1, upload.stderr  # the bad row, named
    assert summary["rejected"][0]["row"] == 60 and summary["rejected"][0]["field"] == "associationId"
    assert summary["inserted"] == 60

    def matched() -> dict:
        report = client.accuracy(dep_id)
        return report if [m["matched"] for m in report["models"]] == [60, 60] else {}

    report = wait_until(matched, 90, 0.5, what="60 predictions of each model matched with their actuals")
    model, shadow = report["models"]
    assert shadow["modelId"] == challenger["id"] and shadow["champion"] is False and shadow["kind"] == "multiclass"
    # the challenger's own answers for the same rows, judged against the same actuals
    reference = load_model(second_package)
    theirs = reference.predict(decode(json.dumps(rows).encode(), "application/json", reference.manifest)).probabilities
    their_labels = [reference.manifest.class_labels[i] for i in theirs.argmax(axis=1)]
    assert shadow["metrics"]["accuracy"] == pytest.approx(skm.accuracy_score(truth, their_labels), abs=1e-6)
    their_loss = skm.log_loss(truth, theirs, labels=reference.manifest.class_labels)
    assert shadow["metrics"]["logLoss"] == pytest.approx(their_loss, abs=1e-5)
    probabilities = np.array([[v["value"] for v in a["predictionValues"]] for a in answers])
    predicted = [a["prediction"] for a in answers]
    assert model["kind"] == "multiclass" and model["modelId"] == client.get_deployment(dep_id)["modelPackageId"]
    assert model["champion"] is True
    assert model["metrics"]["accuracy"] == pytest.approx(skm.accuracy_score(truth, predicted), abs=1e-6)
    assert model["metrics"]["logLoss"] == pytest.approx(skm.log_loss(truth, probabilities, labels=names), abs=1e-5)
    client.close()
