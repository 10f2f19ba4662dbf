"""Batch's array form (what Open Inference Protocol tensors decode to) behaves as its rows form."""

from __future__ import annotations

import numpy as np

from deckhand.packages import Batch

COLUMNS = ["a", "b"]


def test_the_array_form_reads_like_rows() -> None:
    rows = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    array, listed = Batch(COLUMNS, array=np.array(rows)), Batch(COLUMNS, rows=rows)
    assert len(array) == 3
    assert array.to_array().tolist() == listed.to_array().tolist()
    assert array.to_array(dtype=np.float32).dtype == np.float32
    assert array.slice(1, 3).array.tolist() == rows[1:] and array.slice(1, 3).rows is None
    assert array.head_records(2) == listed.head_records(2) == [{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 4.0}]
    assert array.to_frame().equals(listed.to_frame())


def test_concat_keeps_arrays_and_mixes_with_rows() -> None:
    one, two = Batch(COLUMNS, array=np.array([[1.0, 2.0]])), Batch(COLUMNS, array=np.array([[3.0, 4.0]]))
    merged = Batch.concat([one, two])
    assert merged.array.tolist() == [[1, 2], [3, 4]] and merged.rows is None
    mixed = Batch.concat([one, Batch(COLUMNS, rows=[[5, 6]])])  # a /predictions and a /v2 request batched together
    assert mixed.rows == [[1.0, 2.0], [5, 6]]
    framed = Batch.concat([two, Batch(COLUMNS, frame=Batch(COLUMNS, rows=[[7, 8]]).to_frame())])
    assert framed.to_array().tolist() == [[3, 4], [7, 8]]
