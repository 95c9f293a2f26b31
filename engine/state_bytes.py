"""A state dict (PointMetrics.state_dict, MetricState.state_dict) as bytes and back:
its arrays in a NumPy ``.npz`` archive, everything else (numbers, strings, lists,
nesting) in a JSON skeleton stored beside them. Nothing is pickled, so bytes from
another process (a training rank) can only ever be data. Tables kept beside a state
(per-image rows) go as Arrow IPC streams."""
import io
import json
import zipfile

import numpy as np
import pyarrow as pa

from .errors import InputError, first_line

SKELETON = "skeleton.json"


def to_bytes(state):
    """``state`` (dicts, lists, numbers, strings, None and numpy arrays of numbers or
    text) as bytes.

    Parameters
    ----------
    state : dict

    Returns
    -------
    bytes
    """
    arrays = {}

    def skeleton(value):
        if isinstance(value, np.ndarray):
            name = f"a{len(arrays)}"
            arrays[name] = value
            return {"__array__": name}
        if isinstance(value, dict):
            return {"__dict__": [[key, skeleton(item)] for key, item in value.items()]}
        if isinstance(value, (list, tuple)):
            return [skeleton(item) for item in value]
        if isinstance(value, np.generic):
            return value.item()
        return value

    text = json.dumps(skeleton(state), allow_nan=True)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays, **{SKELETON: np.array(text)})
    return buffer.getvalue()


def from_bytes(data):
    """``to_bytes``'s inverse.

    Parameters
    ----------
    data : bytes or numpy.ndarray of uint8

    Returns
    -------
    dict

    Raises
    ------
    InputError
        When ``data`` is not what ``to_bytes`` makes.
    """
    try:
        with np.load(io.BytesIO(bytes(data)), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        skeleton = json.loads(str(arrays.pop(SKELETON)))
    except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"not a pointscore state: {first_line(exc)}") from None

    def rebuilt(value):
        if isinstance(value, dict):
            if "__array__" in value:
                return arrays[value["__array__"]]
            return {key: rebuilt(item) for key, item in value["__dict__"]}
        if isinstance(value, list):
            return [rebuilt(item) for item in value]
        return value

    return rebuilt(skeleton)


def table_to_bytes(table):
    """A pyarrow Table as Arrow IPC stream bytes."""
    buffer = io.BytesIO()
    with pa.ipc.new_stream(buffer, table.schema) as writer:
        writer.write_table(table)
    return buffer.getvalue()


def table_from_bytes(data):
    """``table_to_bytes``'s inverse (bytes, or a buffer such as a uint8 array)."""
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()
