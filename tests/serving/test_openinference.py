"""The Open Inference Protocol (KServe v2 / Triton REST): the codec (deckhand.serving.openinference)
and the routes (deckhand.serving.openinference_api) on single- and multi-model servers,
with the KServe docs' request shape, hand-made binary bodies and the real tritonclient."""

from __future__ import annotations

import struct
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest

from deckhand import deployment_dirs
from deckhand.packages import Manifest, Predictions
from deckhand.packages.demo import sample_rows, train_demo_package
from deckhand.serving import openinference
from deckhand.serving.codecs import RequestError
from deckhand.serving.config import ServeConfig
from deckhand.serving.testing import ServeProcess

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
IRIS = Manifest(
    name="iris",
    format="sklearn",
    target_type="multiclass",
    class_labels=["setosa", "versicolor", "virginica"],
    features=[{"name": f} for f in FEATURES],
    payload_sha256="0" * 64,
)
# KServe's sklearn v2 example request (docs: "Deploy Scikit-learn models with InferenceService", iris-input-v2.json)
KSERVE_DOCS_REQUEST = {
    "inputs": [
        {"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}
    ]
}


def _decode(request: dict, max_rows: int = 1000, manifest: Manifest = IRIS) -> openinference.InferRequest:
    return openinference.decode_request(orjson.dumps(request), "", manifest, max_rows)


def _tensor(name: str, shape: list[int], data: object, datatype: str = "FP64") -> dict:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def _binary_body(header: dict, *parts: bytes) -> tuple[bytes, str]:
    head = orjson.dumps(header)
    return head + b"".join(parts), str(len(head))


# -- the codec -------------------------------------------------------------------------------
def test_the_matrix_layout_nested_or_flat_is_one_float_array() -> None:
    nested = _decode({"inputs": [_tensor("input-0", [2, 4], [[1, 2, 3, 4], [5, 6, 7, 8]], "INT32")]})
    flat = _decode({"inputs": [_tensor("x", [2, 4], [1, 2, 3, 4, 5, 6, 7, 8.5])]})
    assert nested.batch.array.dtype == np.float64 and nested.batch.rows is None
    assert nested.batch.array.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]
    assert flat.batch.array[1].tolist() == [5, 6, 7, 8.5] and flat.batch.columns == FEATURES
    assert [o.name for o in nested.outputs] == ["output-0"] and not nested.outputs[0].binary


def test_the_columnar_layout_takes_one_tensor_per_feature_in_any_order() -> None:
    tensors = [_tensor(name, [2] if i % 2 else [2, 1], [i, i + 10], "FP32") for i, name in enumerate(FEATURES)]
    decoded = _decode({"inputs": tensors[::-1]})
    assert decoded.batch.columns == FEATURES
    assert decoded.batch.array.tolist() == [[0, 1, 2, 3], [10, 11, 12, 13]]


def test_binary_inputs_of_every_kind() -> None:
    x = np.arange(8, dtype="<f4").reshape(2, 4)
    header = {
        "inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": 32}}]
    }
    body, length = _binary_body(header, x.tobytes())
    assert openinference.decode_request(body, length, IRIS, 10).batch.array.tolist() == x.tolist()

    words = [b"a", b"bc"]
    raw = b"".join(struct.pack("<I", len(w)) + w for w in words)
    header = {
        "inputs": [{"name": "t", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": len(raw)}}]
    }
    body, length = _binary_body(header, raw)
    schemaless = IRIS.model_copy(update={"features": []})
    batch = openinference.decode_request(body, length, schemaless, 10).batch
    assert batch.columns == ["t"] and batch.to_frame()["t"].tolist() == ["a", "bc"]


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        ({"inputs": []}, '"inputs" must be a non-empty list'),
        ({"inputs": [_tensor("input-0", [2, 4], [1.0] * 7)]}, '\'input-0\': "shape" holds 8 values, "data" has 7'),
        ({"inputs": [_tensor("input-0", [1, 4], [1.5] * 4, "INT64")]}, "datatype INT64 needs integers"),
        ({"inputs": [_tensor("input-0", [1, 4], [1, 2, 3, 300], "UINT8")]}, "(300) is out of UINT8's range"),
        ({"inputs": [_tensor("input-0", [1, 4], ["1", "2", "3", "4"])]}, "datatype FP64 needs numbers"),
        ({"inputs": [_tensor("input-0", [1, 4], [True, 1.5, 2, 3])]}, 'needs numbers in "data", found true'),
        ({"inputs": [_tensor("input-0", [1, 4], [[1, 2], [3]])]}, "rectangular"),
        ({"inputs": [_tensor("input-0", [1, 4], [1] * 4, "FLOAT")]}, "\"datatype\" 'FLOAT' is not one of BOOL"),
        ({"inputs": [_tensor("input-0", [4], [1] * 4)]}, "send shape [1, 4] for one row"),
        ({"inputs": [_tensor("input-0", [1, 3], [1] * 3)]}, "has 3 features per row; the model takes 4"),
        ({"inputs": [_tensor("sepal_length", [1], [1]), _tensor("colour", [1], [1])]}, "['colour'] are not features"),
        ({"inputs": [_tensor("sepal_length", [1], [1])]}, "missing tensors ['sepal_width'"),
        (
            {
                "inputs": [
                    _tensor(f, [2] if f != "petal_width" else [3], [1] * (2 if f != "petal_width" else 3))
                    for f in FEATURES
                ]
            },
            "the same rows (2)",
        ),  # fmt: skip
        ({"inputs": [_tensor("input-0", [0, 4], [])]}, "hold no rows"),
        ({"inputs": [_tensor("input-0", [1, 4], [1] * 4)], "outputs": [{"name": "proba"}]}, "'proba' is not an output"),
        ({"inputs": [_tensor("input-0", [1, 4], [1] * 4)], "id": 7}, '"id" must be a string'),
    ],
)
def test_bad_tensors_are_400s_naming_the_tensor_and_field(request_body: dict, message: str) -> None:
    with pytest.raises(RequestError) as caught:
        _decode(request_body)
    assert caught.value.status == 400 and message in str(caught.value)


def test_bad_binary_bodies_and_the_row_limit() -> None:
    header = {
        "inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}]
    }
    body, length = _binary_body(header, b"\0" * 12)
    with pytest.raises(RequestError, match="does not fit the 12 binary bytes"):
        openinference.decode_request(body, length, IRIS, 10)
    body, length = _binary_body(header, b"\0" * 20)
    with pytest.raises(RequestError, match="4 bytes after the tensors' binary data"):
        openinference.decode_request(body, length, IRIS, 10)
    with pytest.raises(RequestError, match="Inference-Header-Content-Length is '999'"):
        openinference.decode_request(body, "999", IRIS, 10)
    with pytest.raises(RequestError, match="over the limit of 10 \\(--max-rows\\)") as caught:
        _decode({"inputs": [_tensor("input-0", [11, 4], [1] * 44)]}, max_rows=10)
    assert caught.value.status == 413


def test_outputs_labels_probabilities_and_binary() -> None:
    decoded = _decode(
        {
            "id": "r-1",
            "inputs": [_tensor("input-0", [2, 4], [1] * 8)],
            "outputs": [{"name": "output-0"}, {"name": "predict_proba", "parameters": {"binary_data": True}}],
        }
    )
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    body, length = openinference.encode_response(
        decoded, Predictions(probabilities=proba), ["setosa", "virginica"], IRIS, "iris", "m-1"
    )
    head = orjson.loads(body[:length])
    assert head["id"] == "r-1" and head["model_name"] == "iris" and head["model_version"] == "m-1"
    labels, probabilities = head["outputs"]
    assert labels == {"name": "output-0", "datatype": "BYTES", "shape": [2], "data": ["setosa", "virginica"]}
    assert probabilities["shape"] == [2, 3] and probabilities["parameters"] == {"binary_data_size": 48}
    assert np.frombuffer(body[length:], "<f8").reshape(2, 3).tolist() == proba.tolist()

    numbered = IRIS.model_copy(update={"target_type": "binary", "class_labels": ["0", "1"]})
    binary_default = _decode(
        {"inputs": [_tensor("input-0", [2, 4], [1] * 8)], "parameters": {"binary_data_output": True}}
    )
    body, length = openinference.encode_response(
        binary_default, Predictions(probabilities=proba[:, :2]), ["0", "1"], numbered, "b", None
    )
    assert orjson.loads(body[:length])["outputs"][0]["datatype"] == "INT64"
    assert np.frombuffer(body[length:], "<i8").tolist() == [0, 1]


# -- the routes, in-process ------------------------------------------------------------------
def test_kserve_docs_request_gets_what_predictions_gives(serve, demo_package: Path, client: httpx.Client) -> None:
    with serve(ServeConfig(package=demo_package, model_id="m-1")) as (url, _app):
        rows = [dict(zip(FEATURES, row, strict=True)) for row in KSERVE_DOCS_REQUEST["inputs"][0]["data"]]
        expected = client.post(f"{url}/predictions", json=rows).json()["data"]
        asked = dict(KSERVE_DOCS_REQUEST, outputs=[{"name": "output-0"}, {"name": "predict_proba"}])
        response = client.post(f"{url}/v2/models/default/infer", json=asked)
        assert response.status_code == 200, response.text
        labels, proba = response.json()["outputs"]
        assert labels["data"] == [row["prediction"] for row in expected]
        assert np.allclose(
            np.reshape(proba["data"], (2, 3)), [[v["value"] for v in row["predictionValues"]] for row in expected]
        )
        # the columnar (MLServer) layout gives the same
        columnar = {"inputs": [_tensor(f, [2, 1], [[r[f]] for r in rows], "FP32") for f in FEATURES]}
        assert client.post(f"{url}/v2/models/default/infer", json=columnar).json()["outputs"][0] == labels


def test_single_model_names_versions_health_and_metrics(serve, demo_package: Path, client: httpx.Client) -> None:
    with serve(ServeConfig(package=demo_package, model_id="m-1")) as (url, _app):
        assert client.get(f"{url}/v2").json()["extensions"] == ["binary_tensor_data"]
        assert client.get(f"{url}/v2/health/live").status_code == 200
        assert client.get(f"{url}/v2/health/ready").json() == {"ready": True}
        for name in ("default", "demo-multiclass", "m-1"):  # deployment id, model name, model id
            assert client.get(f"{url}/v2/models/{name}/ready").status_code == 200
        meta = client.get(f"{url}/v2/models/default/versions/m-1").json()
        assert meta["versions"] == ["m-1"] and meta["inputs"] == [
            {"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}
        ]
        assert [o["name"] for o in meta["outputs"]] == ["output-0", "predict_proba"]
        unknown = client.get(f"{url}/v2/models/nope")
        assert unknown.status_code == 404 and "no model 'nope'" in unknown.json()["error"]
        old = client.post(f"{url}/v2/models/default/versions/m-0/infer", json=KSERVE_DOCS_REQUEST)
        assert old.status_code == 404 and "serves version 'm-1'" in old.json()["error"]

        assert client.post(f"{url}/v2/models/default/versions/m-1/infer", json=KSERVE_DOCS_REQUEST).status_code == 200
        bad = client.post(f"{url}/v2/models/default/infer", json={"inputs": [_tensor("input-0", [1, 3], [1, 2, 3])]})
        assert bad.status_code == 400 and "the model takes 4" in bad.json()["error"]
        metrics = client.get(f"{url}/metrics").text
        assert 'deckhand_prediction_requests_total{deployment="default",status="200"} 1.0' in metrics
        assert 'deckhand_prediction_requests_total{deployment="default",status="400"} 1.0' in metrics
        assert 'deckhand_prediction_rows_total{deployment="default"} 2.0' in metrics


def test_binary_request_and_response_over_http(serve, demo_package: Path, client: httpx.Client) -> None:
    """The wire form tritonclient sends by default: binary inputs, binary_data_output."""
    x = np.array(KSERVE_DOCS_REQUEST["inputs"][0]["data"], dtype="<f4")
    header = {
        "inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": 32}}],
        "parameters": {"binary_data_output": True},
    }
    body, length = _binary_body(header, x.tobytes())
    with serve(ServeConfig(package=demo_package)) as (url, _app):
        response = client.post(
            f"{url}/v2/models/default/infer", content=body, headers={"Inference-Header-Content-Length": length}
        )
        assert response.status_code == 200 and response.headers["content-type"] == "application/octet-stream"
        size = int(response.headers["inference-header-content-length"])
        output = orjson.loads(response.content[:size])["outputs"][0]
        raw = response.content[size:]
        assert output["parameters"]["binary_data_size"] == len(raw)
        labels, offset = [], 0
        while offset < len(raw):
            (n,) = struct.unpack_from("<I", raw, offset)
            labels.append(raw[offset + 4 : offset + 4 + n].decode())
            offset += 4 + n
        assert labels == ["versicolor", "versicolor"]


def test_limits_answer_in_the_protocol_form(serve, demo_package: Path, client: httpx.Client) -> None:
    with serve(ServeConfig(package=demo_package, max_body_bytes=300, max_rows=3)) as (url, _app):
        big = client.post(f"{url}/v2/models/default/infer", json={"inputs": [_tensor("input-0", [50, 4], [1.0] * 200)]})
        assert big.status_code == 413 and "--max-body-mb" in big.json()["error"]
        rows = client.post(f"{url}/v2/models/default/infer", json={"inputs": [_tensor("input-0", [4, 4], [1] * 16)]})
        assert rows.status_code == 413 and "--max-rows" in rows.json()["error"]


def test_multi_model_by_directory_or_deployment_id(
    serve, demo_package: Path, tmp_path: Path, client: httpx.Client
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    regression = tmp_path / "diabetes.dhpkg"
    train_demo_package(regression, task="regression")
    deployment_dirs.install(models, "d1", "dep-1", "m-1", demo_package)
    deployment_dirs.install(models, "d2", "dep-2", "m-2", regression)
    with serve(ServeConfig(models_dir=models)) as (url, _app):
        assert client.post(f"{url}/v2/models/dep-1/versions/m-1/infer", json=KSERVE_DOCS_REQUEST).status_code == 200
        rows = sample_rows(2, task="regression")
        names = list(rows[0])
        request = {"inputs": [_tensor("input-0", [2, len(names)], [[r[n] for n in names] for r in rows])]}
        response = client.post(f"{url}/v2/models/d2/infer", json=request).json()
        output = response["outputs"][0]
        expected = [
            row["prediction"] for row in client.post(f"{url}/deployments/d2/predictions", json=rows).json()["data"]
        ]
        assert output["datatype"] == "FP64" and output["shape"] == [2] and np.allclose(output["data"], expected)
        assert response["model_version"] == "m-2"
        assert client.get(f"{url}/v2/models/demo-multiclass").status_code == 404  # a model name: single-model only


# -- a real `deckhand serve` and the real tritonclient ---------------------------------------
def test_tritonclient_against_deckhand_serve(demo_package: Path, tmp_path: Path) -> None:
    http = pytest.importorskip(
        "tritonclient.http", reason="tritonclient is not installed: pip install -e '.[test]' (it is in the test extra)"
    )
    x = np.array(KSERVE_DOCS_REQUEST["inputs"][0]["data"], dtype=np.float32)
    with ServeProcess(["--package", str(demo_package), "--model-id", "m-1"], tmp_path / "serve.log") as server:
        server.wait_ready()
        client = http.InferenceServerClient(server.url.removeprefix("http://"))
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("default") and not client.is_model_ready("nope")
        assert client.get_model_metadata("default", "m-1")["outputs"][1]["name"] == "predict_proba"
        for binary in (True, False):
            tensor = http.InferInput("input-0", list(x.shape), "FP32")
            tensor.set_data_from_numpy(x, binary_data=binary)
            outputs = [http.InferRequestedOutput(name, binary_data=binary) for name in ("output-0", "predict_proba")]
            result = client.infer("default", [tensor], outputs=outputs, request_id="r-7", model_version="m-1")
            labels = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("output-0")]
            assert labels == ["versicolor", "versicolor"]  # binary BYTES come back as bytes, JSON as str
            assert result.as_numpy("predict_proba").shape == (2, 3)
            assert result.get_response()["id"] == "r-7"
        default = client.infer("default", [tensor])  # no outputs: binary_data_output, output-0 only
        assert default.as_numpy("output-0").tolist() == [b"versicolor", b"versicolor"]
        with pytest.raises(Exception, match="no model 'nope'"):
            client.infer("nope", [tensor])
