"""Kubernetes plugin settings: bosun's documented keys, defaults, and errors that name the key and the fix."""

from __future__ import annotations

import pytest

from deckhand.plugin.errors import ConfigError
from deckhand.plugins.kubernetes.config import DOCUMENTED_KEYS, IN_CLUSTER, KubernetesConfig

BASE = {
    "ppsBaseImage": "reg.example.com/deckhand/pps:0.1.0",
    "generatedImageRepo": "reg.example.com:5000/deckhand/models",
    "outfacingPredictionURLPrefix": "http://models.example.com/deployments/",
}


def test_documented_keys_and_defaults() -> None:
    assert set(DOCUMENTED_KEYS) == {
        "kubeConfigContext",
        "kubeNamespace",
        "agentImage",
        "outfacingPredictionURLPrefix",
        "ingressClass",
        "ppsBaseImage",
        "generatedImageRepo",
        "kanikoImage",
        "kanikoConfigmapName",
        "kanikoSecretName",
        "kanikoServiceAccount",
    }
    cfg = KubernetesConfig.from_mapping(BASE)
    assert cfg.context == IN_CLUSTER and cfg.namespace is None and cfg.replicas == 1
    assert cfg.model_image("abc") == "reg.example.com:5000/deckhand/models:m-abc"
    assert cfg.prediction_url("d1") == "http://models.example.com/deployments/d1/predictions"
    assert cfg.ingress_host == "models.example.com"


def test_prefix_without_path_and_ip_host() -> None:
    cfg = KubernetesConfig.from_mapping({**BASE, "outfacingPredictionURLPrefix": "http://127.0.0.1:8080"})
    assert cfg.prediction_url("d1") == "http://127.0.0.1:8080/deployments/d1/predictions"
    assert cfg.ingress_host is None  # an IP address cannot be an Ingress host


@pytest.mark.parametrize(
    ("values", "field", "words"),
    [
        ({"kubeNamespace": "Bad_NS"}, "kubeNamespace", "not a valid namespace"),
        ({"outfacingPredictionURLPrefix": "models.example.com"}, "outfacingPredictionURLPrefix", "http(s) URL"),
        ({"outfacingPredictionURLPrefix": "http://x/models/"}, "outfacingPredictionURLPrefix", "/deployments/"),
        ({"generatedImageRepo": "reg/models:latest"}, "generatedImageRepo", "without a tag"),
        ({"replicas": "two"}, "replicas", "integer"),
        ({"hpa": {"min": 3, "max": 2}}, "hpa.max", "below"),
        ({"hpa": {"minimum": 1}}, "hpa.minimum", "min, max and targetCPU"),
        ({"pdb": {"minAvailable": "half"}}, "pdb.minAvailable", "percentage"),
        ({"kanikoSecretName": "Registry Creds"}, "kanikoSecretName", "object name"),
        ({"insecureRegistries": [1]}, "insecureRegistries", "list of strings"),
        ({"tolerations": {"key": "x"}}, "tolerations", "expected a list"),
        ({"kanikoimage": "x"}, "kanikoimage", "did you mean kanikoImage"),
    ],
)
def test_mistakes_name_the_key(values: dict, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        KubernetesConfig.from_mapping({**BASE, **values})
    assert err.value.field == field
    assert words in str(err.value)


def test_missing_build_settings_are_reported_when_needed() -> None:
    cfg = KubernetesConfig.from_mapping({})
    with pytest.raises(ConfigError, match="generatedImageRepo: is not set"):
        cfg.model_image("m1")


def test_package_url_needs_the_control_plane(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DECKHAND_URL", raising=False)
    with pytest.raises(ConfigError, match="mlopsUrl"):
        KubernetesConfig.from_mapping(BASE).package_url("m1")
    cfg = KubernetesConfig.from_mapping({**BASE, "mlopsUrl": "http://cp:8000/"})
    assert cfg.package_url("m1") == "http://cp:8000/api/v1/model-packages/m1/artifact"
    monkeypatch.setenv("DECKHAND_URL", "http://from-env:9")
    assert (
        KubernetesConfig.from_mapping(BASE).package_url("m2") == "http://from-env:9/api/v1/model-packages/m2/artifact"
    )


def test_hpa_aliases_and_disabled() -> None:
    cfg = KubernetesConfig.from_mapping({**BASE, "hpa": {"minReplicas": 2, "maxReplicas": 4}})
    assert (cfg.hpa.min_replicas, cfg.hpa.max_replicas, cfg.hpa.target_cpu) == (2, 4, 80)
    assert KubernetesConfig.from_mapping({**BASE, "hpa": {"enabled": False, "max": 3}}).hpa is None
