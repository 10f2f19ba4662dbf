"""Request decoding and response encoding, without HTTP."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from deckhand.packages.manifest import Feature, Manifest
from deckhand.packages.model import Predictions
from deckhand.serving import codecs


def _manifest(target: str = "binary", labels: list[str] | None = None) -> Manifest:
    return Manifest(
        name="m",
        format="sklearn",
        target_type=target,  # type: ignore[arg-type]
        class_labels=labels if labels is not None else (["no", "yes"] if target == "binary" else None),
        features=[Feature(name="a"), Feature(name="b")],
        payload_sha256="0" * 64,
    )


@pytest.mark.parametrize(
    "body",
    [
        b'[{"b": 2, "a": 1, "extra": 9}]',
        b'{"data": [{"a": 1, "b": 2}]}',
        b'{"columns": ["b", "a"], "data": [[2, 1]]}',
    ],
)
def test_json_shapes_give_rows_in_feature_order(body: bytes) -> None:
    batch = codecs.decode(body, "application/json", _manifest())
    assert batch.columns == ["a", "b"] and batch.to_array().tolist() == [[1, 2]]


def test_split_orientation_in_model_order_keeps_rows_and_checks_them() -> None:
    batch = codecs.decode(b'{"columns": ["a", "b"], "data": [[1, 2], [3, 4]]}', "application/json", _manifest())
    assert batch.columns == ["a", "b"] and batch.to_array().tolist() == [[1, 2], [3, 4]]
    with pytest.raises(codecs.RequestError, match=r'"data" row 1 must be a list of 2 values .*found a list of 1'):
        codecs.decode(b'{"columns": ["a", "b"], "data": [[1, 2], [3]]}', "application/json", _manifest())
    with pytest.raises(codecs.RequestError, match="no rows"):
        codecs.decode(b'{"columns": ["a", "b"], "data": []}', "application/json", _manifest())


def test_csv_small_and_large_agree() -> None:
    manifest = _manifest()
    small = b"b,a\n2,1\n4,3\n"
    assert codecs.decode(small, "text/csv; charset=utf-8", manifest).to_array().tolist() == [
        [1, 2],
        [3, 4],
    ]
    big = b"a,b\n" + b"1.5,2.5\n" * 40_000  # over the pandas threshold
    batch = codecs.decode(big, "text/csv", manifest)
    assert len(batch) == 40_000 and batch.to_array()[0].tolist() == [1.5, 2.5]


@pytest.mark.parametrize(
    "body",
    [
        b'{"columns": ["a", "b"], "data": [[1, 2.5], [3, -4e-3]]}',
        b'[{"a": 1, "b": 2.5}, {"b": -4e-3, "a": 3}]',
        b"a,b\n1,2.5\n3,-4e-3\n",
        b"b,a\r\n2.5,1\r\n-4e-3,3",
    ],
)
def test_all_numeric_input_becomes_one_float_array(body: bytes) -> None:
    """No Python object per cell: the columnar fast path the micro-batcher and the model share."""
    ctype = "text/csv" if body[:1] not in b"[{" else "application/json"
    batch = codecs.decode(body, ctype, _manifest())
    assert batch.rows is None and batch.array is not None and batch.array.dtype == np.float64
    assert batch.array.tolist() == [[1.0, 2.5], [3.0, -4e-3]]


@pytest.mark.parametrize(
    "body,rows",
    [
        (b"a,b\n1,\n3,4\n", [[1.0, None], [3.0, 4.0]]),  # an empty cell is a missing value
        (b"a,b\nx,2\n", [["x", 2.0]]),  # text
        (b'a,b\n"1",2\n', [[1.0, 2.0]]),  # quoting
        (b"a,b\n1,2\n\n3,4\n", [[1.0, 2.0], [3.0, 4.0]]),  # a blank line
        (b"a,b\nnan,true\n", [[float("nan"), "true"]]),  # JSON would read true, a CSV reads text
    ],
)
def test_csv_that_is_not_plain_numbers_takes_the_general_reader(body: bytes, rows: list[list[object]]) -> None:
    batch = codecs.decode(body, "text/csv", _manifest())
    got = batch.rows if batch.rows is not None else batch.to_array().tolist()
    assert repr(got) == repr(rows)


def test_numeric_csv_fast_path_reads_what_the_csv_module_reads() -> None:
    """The same floats, to the last bit, as the general reader's float() of each cell."""
    values = np.random.default_rng(7).normal(0, 1e3, size=(200, 2))
    text = "b,a\n" + "\n".join(f"{x!r},{y!r}" for x, y in values.tolist()) + "\n"
    text += "1e-320,1E+5\n12345678901234567890,-0\n"
    batch = codecs.decode(text.encode(), "text/csv", _manifest())
    assert batch.array is not None
    expected = [[float(y), float(x)] for x, y in (line.split(",") for line in text.splitlines()[1:])]
    assert batch.array.tolist() == expected
    with pytest.raises(codecs.RequestError, match="line 3 has 3 fields"):
        codecs.decode(b"a,b\n1,2\n3,4,5\n", "text/csv", _manifest())
    with pytest.raises(codecs.RequestError, match="over the limit of 1 "):
        codecs.decode(b"a,b\n1,2\n3,4\n", "text/csv", _manifest(), max_rows=1)


def test_json_booleans_are_refused_on_the_array_path_too() -> None:
    with pytest.raises(codecs.RequestError, match="row 0, feature 'b': a JSON boolean"):
        codecs.decode(b'{"columns": ["a", "b"], "data": [[1.5, true]]}', "application/json", _manifest())
    with pytest.raises(codecs.RequestError, match="row 0, feature 'b': a JSON boolean"):
        codecs.decode(b'[{"a": 1.5, "b": false}]', "application/json", _manifest())


def test_missing_feature_is_named() -> None:
    with pytest.raises(codecs.RequestError, match=r"row 1 lacks the model's features \['b'\]") as err:
        codecs.decode(b'[{"a":1,"b":2},{"a":1}]', "application/json", _manifest())
    assert err.value.status == 422
    with pytest.raises(codecs.RequestError, match="CSV header lacks"):
        codecs.decode(b"a\n1\n", "text/csv", _manifest())


@pytest.mark.parametrize(
    "body,ctype,status,message",
    [
        (b"{oops", "application/json", 400, "not valid JSON"),
        (b"[]", "application/json", 400, "no rows"),
        (b"[1, 2]", "application/json", 400, "JSON objects"),
        (b"a,b\n1\n", "text/csv", 400, "line 2 has 1 fields"),
        (b"<xml/>", "application/xml", 415, "not supported"),
    ],
)
def test_bad_bodies(body: bytes, ctype: str, status: int, message: str) -> None:
    with pytest.raises(codecs.RequestError, match=message) as err:
        codecs.decode(body, ctype, _manifest())
    assert err.value.status == status


def test_binary_json_output_has_threshold_and_positive_class() -> None:
    out = orjson.loads(codecs.encode_json(Predictions(probabilities=np.array([[0.2, 0.8], [0.9, 0.1]])), _manifest()))
    first, second = out["data"]
    assert first == {
        "rowId": 0,
        "prediction": "yes",
        "predictionValues": [{"label": "no", "value": 0.2}, {"label": "yes", "value": 0.8}],
        "predictionThreshold": 0.5,
    }
    assert second["prediction"] == "no" and second["rowId"] == 1


def test_regression_and_csv_output() -> None:
    manifest = _manifest("regression", [])
    out = orjson.loads(codecs.encode_json(Predictions(values=np.array([1.5])), manifest))
    assert out["data"][0]["predictionValues"] == [{"label": "m", "value": 1.5}]
    text = codecs.encode_csv(Predictions(probabilities=np.array([[0.2, 0.8]])), _manifest()).decode()
    assert text.splitlines() == [
        "rowId,prediction,no_PREDICTION,yes_PREDICTION,THRESHOLD,POSITIVE_CLASS",
        "0,yes,0.2,0.8,0.5,yes",
    ]


_ODD_LABELS = ['a "quoted", label', "ünïcode", "new\nline"]


@pytest.mark.parametrize(
    ("target", "labels", "predictions"),
    [
        ("regression", [], Predictions(values=np.tile([1.5, -1e-5, 1e16, np.nan, 3.0, 1 / 3], 3))),
        ("binary", ["no", "yes"], Predictions(probabilities=np.tile([[0.2, 0.8], [0.5, 0.5], [1.0, 0.0]], (4, 1)))),
        ("multiclass", _ODD_LABELS, Predictions(probabilities=np.random.default_rng(1).dirichlet([1, 1, 1], 50))),
    ],
)
def test_column_wise_json_is_what_row_objects_give(target: str, labels: list[str], predictions: Predictions) -> None:
    """Few rows are encoded from row objects, more column by column: the same bytes."""
    manifest = _manifest(target, labels)
    chosen = codecs.prediction_labels(predictions, manifest)
    objects = orjson.dumps(codecs._row_objects(predictions, manifest, chosen), option=orjson.OPT_SERIALIZE_NUMPY)
    assert len(chosen) > codecs.FEW_ROWS
    assert codecs.encode_json(predictions, manifest) == codecs.JSON_OPEN + objects[1:-1] + codecs.JSON_CLOSE
    assert codecs.encode_json(predictions.slice(0, 2), manifest) == orjson.dumps(
        {"data": codecs._row_objects(predictions.slice(0, 2), manifest, chosen[:2])}, option=orjson.OPT_SERIALIZE_NUMPY
    )
    # a later chunk of a streamed response numbers its rows on
    chunk = orjson.loads(b"[" + codecs.encode_json_rows(predictions, manifest, None, 1000) + b"]")
    assert [row["rowId"] for row in chunk] == list(range(1000, 1000 + len(chosen)))
    assert [row["predictionValues"] for row in chunk] == [row["predictionValues"] for row in orjson.loads(objects)]


def test_column_wise_csv_reads_back_like_the_csv_module_writes() -> None:
    import csv
    import io

    manifest = _manifest("multiclass", _ODD_LABELS)
    predictions = Predictions(probabilities=np.array([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]]))
    rows = list(csv.reader(io.StringIO(codecs.encode_csv(predictions, manifest).decode())))
    assert rows[0] == ["rowId", "prediction", *(f"{label}_PREDICTION" for label in _ODD_LABELS)]
    assert rows[1] == ["0", "new\nline", "0.1", "0.2", "0.7"] and rows[2][1] == 'a "quoted", label'
    later = codecs.encode_csv(predictions, manifest, first_row=7, header=False).decode()
    assert later.startswith("7,") and later.endswith("\n")
    regression = codecs.encode_csv(Predictions(values=np.array([np.nan, 2.5])), _manifest("regression", []))
    assert regression.decode().splitlines() == ["rowId,prediction", "0,", "1,2.5"]
