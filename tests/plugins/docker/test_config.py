"""Docker plugin config and naming: validation errors name the key and the fix (no engine)."""

from __future__ import annotations

import pytest

from deckhand import __version__
from deckhand.plugin.errors import ConfigError
from deckhand.plugins.docker import names
from deckhand.plugins.docker.config import DockerConfig, container_reachable_url


def test_defaults_follow_the_documented_plugin_and_our_images(monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/deckhand-docker/docker.sock")
    config = DockerConfig.from_mapping({"MLOPS_BOSUN_PRED_ENV_ID": "pe1"})
    assert config.network == "bosun"
    assert config.traefik_image == f"deckhand-proxy:{__version__}"
    assert config.agent_image == f"deckhand-tracking-agent:{__version__}"
    assert config.rabbitmq_image == f"deckhand-rabbitmq:{__version__}"
    assert config.pps_base_image == f"deckhand-pps:{__version__}"
    assert config.image_repository == "mlops_model"  # the documented prefix "mlops_" + "model"
    assert config.container_prefix == "mlops_"
    assert config.traefik_ports == {80: 81, 8080: 8081}
    assert config.docker_host == "unix:///run/deckhand-docker/docker.sock"
    assert config.prediction_url("d1") == "http://localhost:81/deployments/d1/predictions"
    assert config.environment_id == "pe1"


def test_documented_example_config_is_accepted() -> None:
    config = DockerConfig.from_mapping(
        {
            "dockerNetwork": "bosun",
            "traefikImage": "traefik:2.3.3",
            "outfacingPredictionURLPrefix": "http://models.example:81/",
            "agentImage": "datarobot/mlops-tracking-agent:latest",
            "rabbitmqImage": "rabbitmq:3-management",
            "ppsBaseImage": "datarobot/datarobot-portable-prediction-api:latest",
            "generatedImagePrefix": "mlops_",
            "containerNamePrefix": "mlops_",
            "traefikPortMapping": {80: 81, 8080: 8081},
            "rabbitmqPortMapping": {"15672": "15673", "5672": "5673"},
        }
    )
    assert config.prediction_url("7") == "http://models.example:81/deployments/7/predictions"
    assert config.rabbitmq_ports == {15672: 15673, 5672: 5673}


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"dockerNetwork": "has space"}, "dockerNetwork"),
        ({"dockerNetwork": ""}, "dockerNetwork"),
        ({"traefikPortMapping": {80: "x"}}, "traefikPortMapping.80"),
        ({"traefikPortMapping": {443: 8443}}, "traefikPortMapping.443"),
        ({"traefikPortMapping": {80: 70000}}, "traefikPortMapping.80"),
        ({"traefikPortMapping": {8080: 8081}}, "outfacingPredictionURLPrefix"),
        ({"outfacingPredictionURLPrefix": "ftp://x"}, "outfacingPredictionURLPrefix"),
        ({"generatedImagePrefix": "UPPER/Case"}, "generatedImagePrefix"),
        ({"containerNamePrefix": "a/b"}, "containerNamePrefix"),
        ({"startTimeoutSeconds": "soon"}, "startTimeoutSeconds"),
        ({"startTimeoutSeconds": 0}, "startTimeoutSeconds"),
        ({"dockerHost": "/var/run/docker.sock"}, "dockerHost"),
    ],
)
def test_bad_values_name_the_key(values: dict, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        DockerConfig.from_mapping(values)
    assert caught.value.field == field


def test_monitoring_follows_the_environment_and_reaches_the_host() -> None:
    config = DockerConfig.from_mapping(
        {"MLOPS_BOSUN_PRED_ENV_ENABLE_MONITORING": True, "mlopsUrl": "http://127.0.0.1:8000", "mlopsApiToken": "t0k3n"}
    )
    assert config.monitoring is True
    assert config.monitoring_server_url == "http://host.docker.internal:8000"
    assert container_reachable_url("https://cp.example/api") == "https://cp.example/api"
    assert DockerConfig.from_mapping({"monitoring": "false"}).monitoring is False


def test_names_are_valid_and_stable() -> None:
    assert names.container_name("mlops_", "d1", "m1") == "mlops_deployment_d1_m1"
    odd = names.container_name("p_", "dep/with space", "m:1")
    assert "/" not in odd and " " not in odd and ":" not in odd
    assert odd == names.container_name("p_", "dep/with space", "m:1")
    assert names.container_name("p_", "a/b", "m") != names.container_name("p_", "a-b", "m")
    router = names.router_name("d.1", "m@2")
    assert "." not in router and "@" not in router
    assert names.image_tag("abc") == "m-abc"
    labels = names.traefik_labels("pe", "net", "d1", "m1", 5)
    assert labels["traefik.http.routers.d-d1-m-m1.priority"] == "5"
    assert labels["traefik.http.routers.d-d1-m-m1.rule"] == names.traefik_rule("d1")


def test_the_traefik_rule_names_only_the_public_routes() -> None:
    """Method and exact path per public route: no prefix, so `POST /deployments/<id>` (an
    upload) and `DELETE` match no router (the real proxy: test_plugin.py)."""
    assert names.traefik_rule("d1") == (
        "(Method(`POST`) && (Path(`/deployments/d1/predictions`) || Path(`/deployments/d1/predict`)"
        " || Path(`/v2/models/d1/infer`)))"
        " || (Method(`GET`) && (Path(`/deployments/d1/info`) || Path(`/deployments/d1`)"
        " || Path(`/v2/models/d1`) || Path(`/v2/models/d1/ready`)))"
    )
    assert "PathPrefix" not in names.traefik_rule("d1")


def test_runner_reports_an_unreachable_engine_as_a_status(tmp_path) -> None:
    """Through `bosun-plugin-runner --plugin docker`: a failing status file, not a crash;
    the token given as MLOPS_API_TOKEN never shows."""
    import os

    from tests.plugin.helpers import run_runner, write_yaml

    socket_path = tmp_path / "nothing.sock"
    config = write_yaml(
        tmp_path / "pe.yaml",
        {
            "pluginConfig": {"MLOPS_BOSUN_PRED_ENV_ID": "pe1", "dockerHost": f"unix://{socket_path}"},
            "peInfo": {"id": "pe1", "deployments": []},
        },
    )
    status = tmp_path / "status.yaml"
    token = "dh_secret-token-never-shown-0123"
    result = run_runner(
        "--plugin", "docker", "--action", "pe_status", "--config", str(config), "--show-status",
        status_file=status, env={**os.environ, "MLOPS_API_TOKEN": token},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.status is not None and result.status["status"] == "failing"
    assert "unreachable" in result.status["msg"] and str(socket_path) in result.status["msg"]
    assert token not in result.stdout + result.stderr
