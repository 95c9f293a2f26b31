"""engine/arrow_values.py reads and builds Arrow arrays from their buffers (pyarrow's own
conversions import pandas): the same values and types as pyarrow's conversions, nulls,
offsets into a buffer and empty arrays included."""
import numpy as np
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from pointscore.arrow_values import arrow_array, arrow_table, numpy_values, valid_mask

NUMBER_TYPES = [pa.int8(), pa.int32(), pa.int64(), pa.uint16(), pa.uint64(), pa.float32(),
                pa.float64()]


@given(st.sampled_from(NUMBER_TYPES), st.lists(st.one_of(st.none(), st.integers(0, 100))),
       st.integers(0, 5), st.integers(0, 5))
def test_numpy_values_equal_pyarrows(arrow_type, values, start, cut):
    array = pa.array(values, arrow_type).slice(start, max(0, len(values) - start - cut))
    chunked = pa.chunked_array([array, array], arrow_type)
    for source in (array, chunked):
        got = numpy_values(source)
        expected = source.to_numpy() if isinstance(source, pa.ChunkedArray) \
            else source.to_numpy(zero_copy_only=False)
        if pa.types.is_floating(arrow_type) or not source.null_count:
            assert got.dtype == np.dtype(arrow_type.to_pandas_dtype())
        np.testing.assert_array_equal(got, expected)
    assert valid_mask(array).tolist() == array.is_valid().to_pylist()
    filled = numpy_values(array, fill=7)
    assert filled.dtype == np.dtype(arrow_type.to_pandas_dtype())
    np.testing.assert_array_equal(filled, array.fill_null(7).to_numpy(zero_copy_only=False))


@given(st.lists(st.integers(-2**63, 2**63 - 1)), st.data())
def test_arrow_array_of_numbers_equals_pa_array(values, data):
    nulls = np.array(data.draw(st.lists(st.booleans(), min_size=len(values),
                                        max_size=len(values))), bool)
    numbers = np.array(values, np.int64)
    assert arrow_array(numbers, nulls).equals(pa.array(numbers, mask=nulls))
    assert arrow_array(numbers[::2]).equals(pa.array(numbers[::2]))
    assert arrow_array(numbers.astype(float)).equals(pa.array(numbers.astype(float)))
    assert arrow_array(nulls).equals(pa.array(nulls))
    if values:
        assert arrow_array(values).equals(pa.array(values))


@given(st.lists(st.text(), min_size=1))
def test_arrow_array_of_strings_equals_pa_array(values):
    assert arrow_array(values).equals(pa.array(values))


def test_arrow_table_takes_arrays_of_every_kind():
    table = arrow_table({"id": pa.array(["a", "b"]), "n": np.array([1, 2]),
                         "kept": np.array([True, False]), "x": np.array([0.5, 1.5])})
    assert table.equals(pa.table({"id": ["a", "b"], "n": [1, 2], "kept": [True, False],
                                  "x": [0.5, 1.5]}))
