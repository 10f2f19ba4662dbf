"""Association ids through both monitoring channels: a prediction server serving a mix that
carries association-id settings reports each row's prediction under its id through the
spool or RabbitMQ, the tracking agent carries it to the control plane, and actuals sent
later match every row."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from tests.monitoring.test_end_to_end import _serve, _stop

from deckhand.client.control_plane import ControlPlaneClient
from deckhand.monitoring.testing import TrackingAgentProcess
from deckhand.packages.container import file_sha256
from deckhand.packages.demo import sample_rows
from deckhand.packages.mix import MixMember, write_mix
from deckhand.testing import free_port, wait_until

from .conftest import ADMIN_TOKEN

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.mark.parametrize("channel", ["spool", pytest.param("amqp", marks=pytest.mark.rabbitmq)])
def test_predictions_by_id_travel_through_the_channel(
    channel: str, tmp_path: Path, request, control_plane, demo_package: Path
) -> None:  # type: ignore[no-untyped-def]
    from deckhand import deployment_dirs

    client = ControlPlaneClient(control_plane.url, ADMIN_TOKEN)
    package = client.upload_package(demo_package)
    env = client.create_environment(name="acc-channel", platform="test")
    dep = client.create_deployment(name="iris", environment_id=env["id"], model_package_id=package["id"])["id"]
    mix = tmp_path / "mix.dhpkg"
    member = MixMember(package["id"], "champion", 100, file_sha256(demo_package), source=demo_package)
    write_mix(mix, "mix-0123456789abcdef", [member], None, {"column": "id", "generate": False})
    spec = f"spool:{tmp_path / 'spool'}"
    if channel == "amqp":
        spec = request.getfixturevalue("rabbitmq").spec(queue=f"acc-{dep}")
    models = tmp_path / "models"
    models.mkdir()
    deployment_dirs.install(models, dep, dep, "mix-0123456789abcdef", mix)
    port = free_port()
    server = _serve(models, port, spec, tmp_path / "serve.log")
    rows = sample_rows(30, seed=9)
    try:
        with TrackingAgentProcess(spec, control_plane.url, ADMIN_TOKEN, tmp_path / "agent.log", flush_interval=0.2):
            url = f"http://127.0.0.1:{port}/deployments/{dep}/predictions"
            answers = []
            with httpx.Client(timeout=10) as http:
                for start in range(0, 30, 3):
                    body = [{**row, "id": f"{channel}-{start + i}"} for i, row in enumerate(rows[start : start + 3])]
                    response = http.post(url, json=body)
                    assert response.status_code == 200, response.text
                    answers += response.json()["data"]
                missing = http.post(url, json=rows[:1])  # no id, and the deployment generates none
                assert missing.status_code == 422 and "row 0: no association id in column 'id'" in missing.text
            assert [a["associationId"] for a in answers] == [f"{channel}-{i}" for i in range(30)]
            # the actuals may reach the control plane before the predictions or after: both match
            actuals = [{"associationId": a["associationId"], "actualValue": a["prediction"]} for a in answers]
            client.upload_actuals(dep, json.dumps({"data": actuals}).encode(), "application/json")

            def matched() -> dict:
                found = client.accuracy(dep)["models"]
                return found[0] if found and found[0]["matched"] == 30 else {}

            model = wait_until(matched, 60, 0.5, what="30 predictions matched")
    finally:
        _stop(server)
        client.close()
    assert model["modelId"] == package["id"] and model["metrics"]["accuracy"] == 1.0
