"""Reads one .mat file at a time, in a process of its own (started by ``mat._Reader``):
scipy's MATLAB reader, written in C, can crash on a damaged file (a segmentation fault
in read_var_array), which no exception handler catches; here a crash costs this process
only. Each request is a JSON line ``{"path": ..., "key": ...}`` on stdin; each answer a
JSON line ``{"messages": [...], "rows": N or null}`` on stdout, then N x 2 float64
(x, y) in native byte order. Nothing is pickled either way."""
import io
import json
import os
import struct
import sys
import zlib

import numpy as np

from ..errors import option

READY = b"ready\n"  # the first line: the process started and imported what it needs

# The most a file may hold once decompressed: the largest crowd-counting annotation is
# well under 1 MiB, and a 1 MiB file of zeros can inflate to 1 GiB.
MAX_INFLATED = 1 << 28
_COMPRESSED = 15  # miCOMPRESSED: a zlib stream holding one variable
_CHUNK = 1 << 20


class _TooLarge(Exception):
    pass


def _inflate(source, size, room, out):
    """Inflate ``size`` compressed bytes of ``source`` into ``out``, at most ``room``
    bytes of output; returns the room left."""
    inflater = zlib.decompressobj()
    left, pending = size, b""
    while not inflater.eof:
        if not pending:
            if not left:
                break
            pending = source.read(min(left, _CHUNK))
            if not pending:
                break
            left -= len(pending)
        data = inflater.decompress(pending, room + 1)
        pending = inflater.unconsumed_tail
        room -= len(data)
        if room < 0:
            raise _TooLarge
        out.write(data)
    source.seek(left, io.SEEK_CUR)
    return room


def _readable(path):
    """What scipy.io.loadmat should read: for a MATLAB v5 file, the file with every
    compressed variable inflated in memory, refusing a file whose variables together
    take more than MAX_INFLATED (scipy would inflate whatever a variable's header
    claims); any other file (v4, which has no compression; v7.3, which scipy refuses)
    as it is."""
    with open(path, "rb") as source:
        header = source.read(128)
        # The test scipy makes (scipy.io.matlab._miobase._get_matfile_version): v4 has a
        # zero among its first 4 bytes; else the major version is byte 125 when byte 126
        # is 'I', else byte 124; 1 is v5, whatever the minor version and the bytes
        # after. Anything but 'IM' is read big-endian.
        if len(header) < 128 or 0 in header[:4]:
            return path
        if header[125 if header[126] == ord("I") else 124] != 1:
            return path
        order = "<" if header[126:128] == b"IM" else ">"
        out, room = io.BytesIO(), MAX_INFLATED
        out.write(header)
        while len(tag := source.read(8)) == 8:
            kind, size = struct.unpack(order + "II", tag)
            if kind == _COMPRESSED:
                room = _inflate(source, size, room, out)
                continue
            room -= 8 + size
            if room < 0:
                raise _TooLarge
            out.write(tag)
            out.write(source.read(size))
        out.write(tag)  # a truncated tag: scipy says what is wrong
        out.seek(0)
        return out


def _mat_points(data, key, path, problems):
    """The N x 2 (x, y) array of one loaded .mat file."""
    if key is None:
        if "image_info" in data:           # ShanghaiTech: cell{struct(location, number)}
            try:
                record = data["image_info"][0, 0]
                if record.dtype.names and "location" in record.dtype.names:
                    location = record["location"][0, 0]
                    number = record["number"][0, 0] if "number" in record.dtype.names else None
                else:
                    location, number = record[0][0][0], None
            except (IndexError, TypeError, ValueError, KeyError):
                problems.add(path, "'image_info' is not ShanghaiTech's cell holding a struct "
                             "with 'location'")
                return None
            array = _numeric_matrix(location, path, "image_info location", problems)
            if array is not None and number is not None:
                if np.iscomplexobj(number):
                    problems.add(path, "image_info number is not a real number")
                    return None
                try:
                    number = np.asarray(number, dtype=np.float64).ravel()
                except (TypeError, ValueError):
                    problems.add(path, "image_info number is not a number")
                    return None
                if number.size == 1 and number[0] != len(array):
                    problems.add(path, f"image_info number is {number[0]:g} but location "
                                 f"has {len(array)} points")
            return array
        if "annPoints" in data:            # UCF-QNRF, NWPU-Crowd mats
            return _numeric_matrix(data["annPoints"], path, "annPoints", problems)
        names = ", ".join(k for k in data if not k.startswith("__")) or "none"
        problems.add(path, f"neither 'image_info' (ShanghaiTech) nor 'annPoints' (UCF-QNRF) "
                     f"in this file (variables: {names}); name one with {option('mat_key')}")
        return None
    if key not in data:
        names = ", ".join(k for k in data if not k.startswith("__")) or "none"
        problems.add(path, f"no variable '{key}' (variables: {names})")
        return None
    return _numeric_matrix(data[key], path, key, problems)


def _numeric_matrix(value, path, what, problems):
    if np.iscomplexobj(value):
        problems.add(path, f"{what} holds complex numbers, expected real coordinates")
        return None
    try:
        array = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError):
        problems.add(path, f"{what} is not a numeric array")
        return None
    if array.size == 0:
        return np.zeros((0, 2))
    if array.ndim != 2 or array.shape[1] != 2:
        problems.add(path, f"{what} has shape {array.shape}, expected N x 2 (x, y)")
        return None
    bad = ~np.isfinite(array).all(axis=1)
    if bad.any():
        rows = ", ".join(str(i + 1) for i in np.flatnonzero(bad)[:5])
        problems.add(path, f"{what} has {int(bad.sum())} non-finite points (rows {rows}, "
                     f"counted from 1 as in MATLAB)")
        return None
    return array


class _Messages(list):
    """A file's problems, collected in the reading process (as _Problems.add)."""

    def add(self, path, message):
        self.append(message)


def read_one(path, key):
    """One file's N x 2 points (or None) and its problems."""
    import scipy.io
    messages = _Messages()
    try:
        data = scipy.io.loadmat(_readable(path))
    except _TooLarge:
        messages.add(path, f"holds more than {MAX_INFLATED >> 20} MiB once decompressed, "
                     "far more than any point annotation")
        return None, messages
    except NotImplementedError:
        messages.add(path, "MATLAB v7.3 (HDF5) files are not supported; save with -v7")
        return None, messages
    except Exception as exc:  # noqa: BLE001 - whatever a damaged file raises
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        messages.add(path, f"cannot read as a .mat file: {first}")
        return None, messages
    return _mat_points(data, key, path, messages), messages


def serve():
    """Answer requests until stdin closes. stdout carries the answers only: anything a
    library prints goes where stderr goes."""
    import scipy.io  # noqa: F401 - before saying ready: a broken scipy is no file's fault
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    answers.write(READY)
    answers.flush()
    for line in sys.stdin:
        request = json.loads(line)
        array, messages = read_one(request["path"], request["key"])
        rows = None if array is None else len(array)
        answers.write(json.dumps({"messages": messages, "rows": rows}).encode() + b"\n")
        if array is not None:
            answers.write(np.ascontiguousarray(array, dtype=np.float64).tobytes())
        answers.flush()


if __name__ == "__main__":
    serve()
