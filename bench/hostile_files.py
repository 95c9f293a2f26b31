"""Writers of hostile inputs that would take too long or too much memory to build the plain
way: decompression bombs written from one compressed chunk repeated. Used by
``bench.hostile`` (the full-size cases of the untrusted-input issue) and by
``tests/test_hostile.py`` (small ones)."""
import struct
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def zeros_zlib(head, n_zero_bytes, chunk=1 << 24):
    """A zlib stream of ``head`` and ``n_zero_bytes`` zeros (a whole number of ``chunk``),
    built from one compressed chunk of zeros repeated: a deflate stream after a sync flush
    is byte-aligned, so the chunk's bytes can be copied."""
    comp = zlib.compressobj(9)
    parts = [comp.compress(head), comp.compress(bytes(chunk)), comp.flush(zlib.Z_SYNC_FLUSH)]
    again = comp.compress(bytes(chunk)) + comp.flush(zlib.Z_SYNC_FLUSH)
    n_chunks, rest = divmod(n_zero_bytes, chunk)
    if rest or n_chunks < 1:
        raise ValueError(f"n_zero_bytes must be a positive multiple of {chunk}")
    parts += [again] * (n_chunks - 1)
    check = zlib.adler32(head)
    a, b = check & 0xFFFF, check >> 16
    b = (b + n_zero_bytes * a) % 65521     # adler-32 over zeros: a stays, b grows by a each
    return b"".join(parts) + b"\x03\x00" + struct.pack(">I", (b << 16) | a)


def mat_bomb(path, n_points, name=b"annPoints"):
    """A MATLAB v5 file of about n_points / 64 bytes holding an n_points x 2 double matrix
    of zeros, compressed (what scipy.io.savemat(..., do_compression=True) writes, without
    holding the matrix in memory); returns the path as text."""
    def padded(data):
        return data + bytes(-len(data) % 8)
    data_bytes = n_points * 2 * 8
    body = (struct.pack("<IIII", 6, 8, 6, 0)                     # array flags: double
            + struct.pack("<IIii", 5, 8, n_points, 2)            # dimensions
            + struct.pack("<II", 1, len(name)) + padded(name)    # name
            + struct.pack("<II", 9, data_bytes))                 # the real part's tag
    head = struct.pack("<II", 14, len(body) + data_bytes) + body
    payload = zeros_zlib(head, data_bytes)
    header = b"MATLAB 5.0 MAT-file, pointscore hostile inputs".ljust(116) + bytes(8) \
        + struct.pack("<H", 0x0100) + b"IM"
    Path(path).write_bytes(header + struct.pack("<II", 15, len(payload)) + payload)
    return str(path)


def constant_parquet(path, rows_per_group, groups):
    """A Parquet file of ``groups`` row groups of null ``image_id, x, y`` rows: millions
    of rows in a few hundred kilobytes; returns the path as text."""
    chunk = pa.table({"image_id": pa.nulls(rows_per_group, pa.int64()),
                      "x": pa.nulls(rows_per_group, pa.float64()),
                      "y": pa.nulls(rows_per_group, pa.float64())})
    with pq.ParquetWriter(path, chunk.schema, write_statistics=False) as writer:
        for _ in range(groups):
            writer.write_table(chunk, row_group_size=rows_per_group)
    return str(path)
