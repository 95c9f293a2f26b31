"""Mutated input files, for every reader and converter, through the command line.

Leaderboards run pointscore on files strangers upload, so no file may crash it (a
signal), hang it, make it exit 1 ("internal error") or print a traceback: bad input
must exit with status 2, one line per problem (docs/metrics.md, section 8). The
hand-written tests of each format check the mistakes someone thought of; these start
from a small valid file of each format and damage it in a few hundred seeded ways
nobody picked: bytes flipped, cut, repeated or inserted; for text, tokens replaced by
huge numbers, NaN, negatives, empty fields or stray separators; for JSON, values of
the wrong type and deep nesting; for typed files (Parquet, Arrow, .mat), columns and
variables of odd types, written by their own writers so that the damage lies past the
decoder, in pointscore's checks.

Each reader's cases run in one child process (tests/test_fuzz.py's ``DRIVER``),
which calls ``pointscore.cli.main`` for each case in turn and logs a line before and
after it: a case that kills the child is named by the line it started, and the cases
after it run in a new child. Every case is made from the seed "<reader>/<index>"
alone; a failure names it, the mutations made and the file, which stays in pytest's
temporary directory; ``mutate(READERS[name], index)`` rebuilds it anywhere.
"""
import gzip
import io
import json
import os
import random
import re
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import scipy.io
import scipy.sparse
from pyarrow import feather

# Mutated files per reader: about a minute for the whole file on 2 cores.
MUTATIONS = 300
# A case that logs nothing for this long hangs (the first one also loads Numba's cache).
CASE_TIMEOUT = 120
# A child may not take more address space than this: a small file must not make
# pointscore allocate gigabytes, and a runaway allocation must not take the machine.
MEMORY_LIMIT = 8 << 30

DRIVER = r'''
"""Run pointscore's command line in this process on each case of a JSON file, logging
one line before each case (started) and one after (its outcome), flushed, so that the
parent knows which case a crash interrupted."""
import faulthandler
import json
import os
import resource
import sys

from pointscore.cli import main


def run(argv, capture):
    """main(argv) with file descriptors 1 and 2 sent to files, so that what C code and
    faulthandler print is caught too: (exit status, exception that escaped, stderr)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(os.devnull, "wb") as out, open(capture, "wb+") as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            status, escaped = main(argv), None
        except BaseException as exc:  # main must return a status, whatever happens
            status, escaped = None, f"{type(exc).__name__}: {exc}"[:500]
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in zip((1, 2), saved):
                os.dup2(copy, fd)
                os.close(copy)
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    return status, escaped, stderr


def drive(cases_path, log_path, capture, memory_limit):
    resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    faulthandler.enable()  # a crash's Python stack goes to the case's captured stderr
    with open(cases_path) as cases_file:
        cases = json.load(cases_file)
    with open(log_path, "a") as log:
        for case in cases:
            log.write(json.dumps({"case": case["id"], "started": True}) + "\n")
            log.flush()
            status, escaped, stderr = run(case["argv"], capture)
            log.write(json.dumps({
                "case": case["id"], "status": status, "escaped": escaped,
                "traceback": "Traceback" in stderr, "internal": "internal error" in stderr,
                "stderr": stderr[:4000]}) + "\n")
            log.flush()


drive(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
'''


# ------------------------------------------------------------------ the valid files

GT = {"image_id": [1, 1, 2, 2, 3], "x": [10.0, 20.5, 5.0, 7.25, 1.0],
      "y": [20.0, 40.25, 5.0, 9.0, 1.5], "class": [1, 1, 2, 1, 1]}
PRED = {"image_id": [1, 1, 2, 3, 3], "x": [10.5, 19.0, 5.0, 1.0, 60.0],
        "y": [20.0, 41.0, 5.5, 2.0, 60.0], "score": [0.9, 0.8, 0.75, 0.5, 0.25],
        "class": [1, 1, 2, 1, 1]}
COCO_GT = {
    "images": [{"id": 1, "width": 640, "height": 480}, {"id": 2, "width": 100, "height": 50}],
    "annotations": [
        {"id": 10, "image_id": 1, "category_id": 1, "keypoints": [10, 20, 2, 0, 0, 0, 30, 40, 1]},
        {"id": 11, "image_id": 2, "category_id": 2, "keypoints": [50, 60, 2]},
    ],
    "categories": [{"id": 1, "name": "head"}, {"id": 2, "name": "cell"}],
}
COCO_RESULTS = [
    {"image_id": 1, "category_id": 1, "keypoints": [11, 21, 1, 0, 0, 0, 29, 41, 0.7],
     "score": 0.9},
    {"image_id": 2, "category_id": 2, "keypoints": [5, 5, 1], "score": 0.4},
]
XY = np.array([[10.0, 20.0], [30.5, 40.25], [7.0, 7.0]])


def csv_text(columns):
    names = list(columns)
    rows = zip(*columns.values(), strict=True)
    return ",".join(names) + "\n" + "".join(",".join(map(str, row)) + "\n" for row in rows)


def nested(columns):
    """The nested layout of a long table: one row per image, a list of point structs."""
    long = pa.table(columns)
    ids = sorted(set(columns["image_id"]))
    fields = [name for name in columns if name != "image_id"]
    points = [[{name: long.column(name)[row].as_py() for name in fields}
               for row in range(long.num_rows) if columns["image_id"][row] == image_id]
              for image_id in ids]
    return pa.table({"image_id": ids, "points": points})


def write_parquet(table, rng=None):
    """Parquet bytes: the valid file with two rows per row group; mutated tables with
    the row groups, codecs and encodings the seed picks."""
    sink = io.BytesIO()
    if rng is None:
        pq.write_table(table, sink, row_group_size=2)
    else:
        pq.write_table(table, sink, row_group_size=rng.choice([1, 2, 1000]),
                       compression=rng.choice(["snappy", "zstd", "gzip", "none"]),
                       use_dictionary=rng.random() < 0.5)
    return sink.getvalue()


def write_feather(table, rng=None):
    """Arrow IPC file (Feather v2) bytes, LZ4-compressed buffers unless the seed says."""
    sink = io.BytesIO()
    feather.write_feather(table, sink, chunksize=rng.choice([1, 2, 1000]) if rng else 2,
                          compression=rng.choice(["lz4", "zstd", "uncompressed"])
                          if rng else "lz4")
    return sink.getvalue()


def write_ipc_stream(table, rng=None):
    """Arrow IPC stream bytes, several record batches."""
    sink = io.BytesIO()
    options = pa.ipc.IpcWriteOptions(compression=rng.choice([None, "lz4", "zstd"])
                                     if rng else None)
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table, max_chunksize=rng.choice([1, 2, 1000]) if rng else 2)
    return sink.getvalue()


# savemat's v5 header text holds the time of writing; this one keeps files reproducible.
MAT5_HEADER = b"MATLAB 5.0 MAT-file, written by tests/test_fuzz.py".ljust(116)


def write_mat(variables, rng=None):
    """.mat (MATLAB v5) bytes; the seed may ask for compressed variables or v4."""
    formats = [("5", False), ("5", True), ("4", False)] if rng else [("5", False)]
    for version, compress in (rng.sample(formats, len(formats)) if rng else formats):
        sink = io.BytesIO()
        try:
            scipy.io.savemat(sink, variables, format=version, do_compression=compress)
        except (TypeError, ValueError):  # v4 holds plain matrices only
            continue
        data = sink.getvalue()
        return MAT5_HEADER + data[len(MAT5_HEADER):] if version == "5" else data
    raise AssertionError("scipy.io.savemat wrote none of the formats")


@dataclass
class Source:
    """A valid input file, and the kinds of damage that suit its format."""
    name: str                      # the file name (its suffix picks the reader)
    data: bytes
    text: str = None               # text formats: mutated token by token, then packed
    compress: Callable = None      # plain bytes -> file bytes (gzip for .csv.gz)
    table: pa.Table = None         # typed formats: columns of odd types, then written
    write: Callable = None         # (table or .mat variables, rng) -> bytes
    mat: dict = None               # .mat files: variables replaced by odd MATLAB values

    def pack(self, plain):
        """The file holding these plain (decompressed) bytes."""
        return self.compress(plain) if self.compress else plain

    @property
    def families(self):
        """The mutations that suit the format: bytes suit any file; compressed text is
        damaged before compression too, or the decoder's checksum catches it all."""
        kinds = ["bytes"]
        if self.text is not None:
            kinds.append("text")
        if self.compress is not None:
            kinds.append("plain bytes")
        if self.name.endswith(".json"):
            kinds.append("json")
        if self.table is not None:
            kinds.append("table")
        if self.mat is not None:
            kinds.append("mat")
        return kinds


def text_source(name, text, compress=None):
    source = Source(name, b"", text=text, compress=compress)
    source.data = source.pack(text.encode())
    return source


def table_source(name, table, write):
    return Source(name, write(table), table=table, write=write)


def mat_source(name, variables):
    return Source(name, write_mat(variables), write=write_mat, mat=variables)


def gzip_bytes(plain):
    return gzip.compress(plain, mtime=0)


@dataclass
class Reader:
    """One way in: the command line (placeholders {gt}, {pred}, {input}, {out} and
    {images_out} name the case's files), its valid inputs and those a case damages."""
    name: str
    argv: list
    sources: dict
    mutated: tuple = ("gt", "pred")


EVALUATE = ["evaluate", "--gt", "{gt}", "--pred", "{pred}", "--device", "cpu",
            "--thresholds", "4,8"]


def convert(fmt, *options, images=True):
    return (["convert", "--from", fmt, *options, "{input}", "--out", "{out}"]
            + (["--images-out", "{images_out}"] if images else []))


def readers():
    gt, pred = pa.table(GT), pa.table(PRED)
    sht = {"image_info": np.array([[{"location": XY, "number": np.array([[3.0]])}]],
                                  dtype=object)}
    return [
        Reader("parquet", EVALUATE, {"gt": table_source("gt.parquet", gt, write_parquet),
                                     "pred": table_source("pred.parquet", pred, write_parquet)}),
        Reader("nested-parquet", EVALUATE, {
            "gt": table_source("gt.parquet", nested(GT), write_parquet),
            "pred": table_source("pred.parquet", nested(PRED), write_parquet)}),
        Reader("arrow-file", EVALUATE, {"gt": table_source("gt.feather", gt, write_feather),
                                        "pred": table_source("pred.feather", pred,
                                                             write_feather)}),
        Reader("arrow-stream", EVALUATE, {"gt": table_source("gt.arrow", gt, write_ipc_stream),
                                          "pred": table_source("pred.arrow", pred,
                                                               write_ipc_stream)}),
        Reader("csv", EVALUATE, {"gt": text_source("gt.csv", csv_text(GT)),
                                 "pred": text_source("pred.csv", csv_text(PRED))}),
        Reader("csv-gz", EVALUATE, {"gt": text_source("gt.csv.gz", csv_text(GT), gzip_bytes),
                                    "pred": text_source("pred.csv.gz", csv_text(PRED),
                                                        gzip_bytes)}),
        Reader("counts-csv", EVALUATE, {
            "gt": text_source("gt.csv", csv_text(GT)),
            "pred": text_source("pred.csv", "image_id,class,count\n1,1,2\n2,2,1.5\n"
                                            "2,1,0\n3,1,1\n")},
            mutated=("pred",)),
        Reader("nwpu-txt-gt", convert("nwpu-txt", "--role", "gt"), {"input": text_source(
            "gt.txt", "1 2 10 20 4 8 1 30.5 40.25 5 9 2\n2 0\n3 1 1.5 2.5 4 8 1\n")},
            mutated=("input",)),
        Reader("nwpu-txt-pred", convert("nwpu-txt", "--role", "pred"), {"input": text_source(
            "pred.txt", "1 3 10 20 31 40 90 90\n2 0\n3 1 1.5 2.5\n")}, mutated=("input",)),
        Reader("nwpu-counts", convert("nwpu-counts"), {"input": text_source(
            "counts.txt", "3610 1.5\n3611 0\n3612 130.0000\n")}, mutated=("input",)),
        Reader("jhu-gt", convert("jhu"), {"input": text_source(
            "0001.txt", "10 20 5 5 1 0\n30 40 6 6 0 1\n")}, mutated=("input",)),
        Reader("nwpu-json", convert("nwpu-json"), {"input": text_source("0001.json", json.dumps(
            {"img_id": "0001.jpg", "human_num": 3, "points": XY.tolist(),
             "boxes": [[x - 1, y - 1, x + 1, y + 1] for x, y in XY.tolist()]}))},
            mutated=("input",)),
        Reader("mat-shanghaitech", convert("mat"), {"input": mat_source("GT_IMG_1.mat", sht)},
               mutated=("input",)),
        Reader("mat-ucf-qnrf", convert("mat"), {"input": mat_source("img_0001_ann.mat",
                                                                    {"annPoints": XY})},
               mutated=("input",)),
        Reader("coco-dataset", convert("coco"),
               {"input": text_source("gt.json", json.dumps(COCO_GT))}, mutated=("input",)),
        Reader("coco-results", convert("coco", "--role", "pred", images=False),
               {"input": text_source("res.json", json.dumps(COCO_RESULTS))},
               mutated=("input",)),
        Reader("convert-csv", convert("csv", "--map", "img=image_id,px=x,py=y,conf=score",
                                      images=False),
               {"input": text_source("points.csv", "img,px,py,conf,note\n1,1.5,2,0.9,a\n"
                                                   "1,3,4,0.2,b\n2,5,6,0.5,c\n")},
               mutated=("input",)),
    ]


READERS = {reader.name: reader for reader in readers()}


# ------------------------------------------------------------------ byte mutations

def _offset(rng, data, end=False):
    return rng.randrange(len(data) + (1 if end else 0)) if data or end else 0


def flip_bit(rng, data):
    if not data:
        return data, "flip: empty file"
    at, bit = _offset(rng, data), rng.randrange(8)
    data[at] ^= 1 << bit
    return data, f"flip bit {bit} of byte {at}"


def set_byte(rng, data):
    if not data:
        return data, "set byte: empty file"
    at, value = _offset(rng, data), rng.randrange(256)
    data[at] = value
    return data, f"byte {at} = {value:#04x}"


# Lengths, counts and offsets that decoders trip over, written over 1, 2, 4 or 8 bytes.
INTERESTING = [0, 1, -1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 2**31 - 1, 2**31,
               2**32 - 1, 2**63 - 1, 2**63, 2**64 - 1]


def set_integer(rng, data):
    width = rng.choice([1, 2, 4, 8])
    value = rng.choice(INTERESTING) % (1 << (8 * width))
    order = rng.choice("<>")
    packed = struct.pack(order + {1: "B", 2: "H", 4: "I", 8: "Q"}[width], value)
    at = _offset(rng, data)
    data[at:at + width] = packed
    return data, f"{width}-byte integer {value:#x} ({order}) at {at}"


def truncate(rng, data):
    at = _offset(rng, data)
    return data[:at], f"truncate to {at} bytes"


def delete_range(rng, data):
    at = _offset(rng, data)
    length = rng.randint(1, 64)
    del data[at:at + length]
    return data, f"delete {length} bytes at {at}"


def duplicate_range(rng, data):
    start = _offset(rng, data)
    piece = data[start:start + rng.randint(1, 256)]
    at = _offset(rng, data, end=True)
    data[at:at] = piece * rng.choice([1, 1, 2, 16])
    return data, f"copy bytes {start}..{start + len(piece)} to {at}"


def insert_bytes(rng, data):
    at = _offset(rng, data, end=True)
    piece = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
    data[at:at] = piece
    return data, f"insert {piece.hex()} at {at}"


BYTE_OPS = [flip_bit, set_byte, set_integer, truncate, delete_range, duplicate_range,
            insert_bytes]


def _damage(rng, data):
    data, done = bytearray(data), []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        data, what = rng.choice(BYTE_OPS)(rng, data)
        done.append(what)
    return bytes(data), done


def mutate_bytes(rng, source):
    return _damage(rng, source.data)


def mutate_plain_bytes(rng, source):
    data, done = _damage(rng, source.text.encode())
    return source.pack(data), done


# ------------------------------------------------------------------ text mutations

# What a field of a text file can hold that a parser may not expect.
TOKENS = ["1e309", "-1e309", "1e999999999", "9" * 40, "-" + "9" * 40, "nan", "NaN", "-nan",
          "inf", "-inf", "Infinity", "-1", "-0", "0", "", " ", "1e-400", "0x1F", "1_000",
          "+5", "1.", ".5", "1,5", "abc", '"', '""', "true", "null", "NULL", "N/A",
          "9223372036854775807", "9223372036854775808", "-9223372036854775809",
          "18446744073709551616", "\uff11", "\u0663", "\u00b2", "\x00", "\u202e", "\ufeff",
          "\u00e9", "1e5", "-1.5", "2.5e-3"]
SEPARATORS = [",", " ", "\t", "\n", "\r", "\r\n", '"', ";", ":", "[", "]", "{", "}", "\\"]
_TOKEN = re.compile(r"[^\s,\[\]{}:]+")


def replace_token(rng, text):
    tokens = list(_TOKEN.finditer(text))
    if not tokens:
        return text, "replace token: none"
    token, value = rng.choice(tokens), rng.choice(TOKENS)
    return (text[:token.start()] + value + text[token.end():],
            f"token {token.group()!r} at {token.start()} -> {value!r}")


def delete_token(rng, text):
    tokens = list(_TOKEN.finditer(text))
    if not tokens:
        return text, "delete token: none"
    token = rng.choice(tokens)
    return text[:token.start()] + text[token.end():], f"delete token {token.group()!r}"


def insert_separator(rng, text):
    at, value = rng.randrange(len(text) + 1), rng.choice(SEPARATORS)
    return text[:at] + value * rng.choice([1, 1, 3]) + text[at:], f"insert {value!r} at {at}"


def _lines(text):
    return text.splitlines(keepends=True) or [""]


def duplicate_line(rng, text):
    lines = _lines(text)
    line = rng.randrange(len(lines))
    copies = rng.choice([1, 1, 100])
    lines[line:line] = [lines[line] if lines[line].endswith("\n") else lines[line] + "\n"] * copies
    return "".join(lines), f"line {line + 1} repeated {copies} times"


def delete_line(rng, text):
    lines = _lines(text)
    line = rng.randrange(len(lines))
    del lines[line]
    return "".join(lines), f"delete line {line + 1}"


def insert_line(rng, text):
    lines = _lines(text)
    line = rng.randrange(len(lines) + 1)
    values = [rng.choice(TOKENS) for _ in range(rng.randint(0, 8))]
    lines[line:line] = [rng.choice([",", " "]).join(values) + "\n"]
    return "".join(lines), f"insert line {values!r} before line {line + 1}"


def join_lines(rng, text):
    return text.replace("\n", rng.choice(["", " ", ","])), "all lines joined"


TEXT_OPS = [replace_token, replace_token, replace_token, delete_token, insert_separator,
            duplicate_line, delete_line, insert_line, join_lines]


def mutate_text(rng, source):
    text, done = source.text, []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        text, what = rng.choice(TEXT_OPS)(rng, text)
        done.append(what)
    return source.pack(text.encode()), done


# ------------------------------------------------------------------ JSON mutations

# Nesting deeper than json's recursion limit, and just under it (then it parses).
DEPTHS = [60, 990, 100_000]
JSON_NUMBERS = [float("inf"), float("-inf"), float("nan"), -1, 0, 10**30, -10**30, 2**63,
                2**64, 1.5, 1e308, -0.0]
JSON_VALUES = [*JSON_NUMBERS, "", "abc", "1", None, True, False, [], {}, [[1, 2]], {"x": 1},
               [None], [1, "a"], *(f"\x00deep{depth}" for depth in DEPTHS)]


def _nodes(value, path=()):
    """Every (path, value) of a JSON document, the root first."""
    yield path, value
    items = value.items() if isinstance(value, dict) else (
        enumerate(value) if isinstance(value, list) else ())
    for key, child in items:
        yield from _nodes(child, path + (key,))


def _set(document, path, value):
    if not path:
        return value
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return document


def _pick_node(rng, document):
    """A node of the document: first a field (its path, list indices left out), so that
    ids and sizes are hit as often as the many coordinates, then one of its nodes."""
    fields = {}
    for path, node in _nodes(document):
        fields.setdefault(tuple(k for k in path if isinstance(k, str)), []).append((path, node))
    return rng.choice(fields[rng.choice(sorted(fields))])


def mutate_json(rng, source):
    document = json.loads(source.text)
    done = []
    for _ in range(rng.choice([1, 1, 2])):
        path, node = _pick_node(rng, document)
        op = rng.choice(["replace", "replace", "replace", "delete", "duplicate", "wrap"])
        if op == "delete" and path:
            parent = document
            for key in path[:-1]:
                parent = parent[key]
            del parent[path[-1]]
        elif op == "duplicate" and isinstance(node, list) and node:
            node.extend([node[rng.randrange(len(node))]] * rng.choice([1, 50]))
        elif op == "wrap":
            document = _set(document, path, [node])
        else:
            op = "replace"
            # A number becomes an odd number half the time: ids and sizes overflow.
            numeric = type(node) in (int, float) and rng.random() < 0.5
            value = rng.choice(JSON_NUMBERS if numeric else JSON_VALUES)
            document = _set(document, path, value)
            done.append(f"json {list(path)} -> {value!r}")
            continue
        done.append(f"json {op} {list(path)}")
    text = json.dumps(document)
    for depth in DEPTHS:
        text = text.replace(json.dumps(f"\x00deep{depth}"), "[" * depth + "]" * depth)
    return source.pack(text.encode()), done


# ------------------------------------------------------------------ typed mutations

ODD_FLOATS = [float("nan"), float("inf"), float("-inf"), 1e308, -1e308, 5e-324, -0.0, 0.0,
              1.5, -3.0, None]


def odd_array(rng, n):
    """(what, an array of n values of a type or value a column should not have)."""
    strings = [rng.choice(TOKENS) for _ in range(n)]
    kinds = {
        "strings": lambda: pa.array(strings),
        "large strings": lambda: pa.array(strings, pa.large_string()),
        "dictionary strings": lambda: pa.array(strings).dictionary_encode(),
        "odd floats": lambda: pa.array([rng.choice(ODD_FLOATS) for _ in range(n)], pa.float64()),
        "float32": lambda: pa.array([rng.choice(ODD_FLOATS) for _ in range(n)], pa.float32()),
        "float16": lambda: pa.array(np.array([rng.choice([1.5, np.inf, np.nan, 65504.0])
                                              for _ in range(n)], np.float16)),
        "int64 extremes": lambda: pa.array([rng.choice([2**63 - 1, -2**63, 0, -1, None])
                                            for _ in range(n)], pa.int64()),
        "uint64 above int64": lambda: pa.array([rng.choice([2**64 - 1, 2**63, 3])
                                                for _ in range(n)], pa.uint64()),
        "int8": lambda: pa.array([rng.randint(-128, 127) for _ in range(n)], pa.int8()),
        "dictionary ints": lambda: pa.array([rng.randint(0, 3) for _ in range(n)]
                                            ).dictionary_encode(),
        "bool": lambda: pa.array([rng.random() < 0.5 for _ in range(n)]),
        "null type": lambda: pa.nulls(n),
        "all-null float64": lambda: pa.nulls(n, pa.float64()),
        "binary": lambda: pa.array([s.encode() for s in strings], pa.binary()),
        "list<int64>": lambda: pa.array([rng.choice([[1, 2], None, []]) for _ in range(n)]),
        "struct": lambda: pa.array([{"a": rng.randint(0, 9)} for _ in range(n)]),
        "timestamp": lambda: pa.array([rng.randint(0, 10**12) for _ in range(n)],
                                      pa.timestamp("ms")),
        "date32": lambda: pa.array([rng.randint(0, 10**4) for _ in range(n)], pa.date32()),
        "decimal128": lambda: pa.array([Decimal("1.25")] * n, pa.decimal128(10, 2)),
        "duration": lambda: pa.array([rng.randint(0, 100) for _ in range(n)], pa.duration("s")),
    }
    what = rng.choice(sorted(kinds))
    return what, kinds[what]()


def odd_points(rng, n):
    """(what, a 'points' column of n lists that breaks the nested layout somehow)."""
    total = rng.choice([0, 1, 5, 12])
    offsets = [0] + sorted(rng.randint(0, total) for _ in range(n - 1)) + [total]
    fields = {name: pa.array([rng.uniform(0, 100) for _ in range(total)])
              for name in ("x", "y", "score")}
    fields["class"] = pa.array([rng.randint(1, 2) for _ in range(total)])
    change = rng.choice(["odd field", "missing field", "extra image_id", "null points",
                         "null lists", "large_list", "list<double>"])
    if change == "odd field":
        name = rng.choice(sorted(fields))
        kind, fields[name] = odd_array(rng, total)
        change = f"field {name}: {kind}"
    elif change == "missing field":
        name = rng.choice(sorted(fields))
        del fields[name]
        change = f"no field {name}"
    elif change == "extra image_id":
        fields["image_id"] = pa.array([rng.choice([7, -1]) for _ in range(total)])
    if change == "list<double>":
        values = pa.array([rng.uniform(0, 9) for _ in range(total)])
    else:
        mask = (pa.array([rng.random() < 0.5 for _ in range(total)], pa.bool_())
                if change == "null points" else None)
        values = pa.StructArray.from_arrays(list(fields.values()), names=list(fields),
                                            mask=mask)
    mask = (pa.array([rng.random() < 0.5 for _ in range(n)], pa.bool_())
            if change == "null lists" else None)
    if change == "large_list":
        return "points large_list", pa.LargeListArray.from_arrays(offsets, values)
    return f"points {change}", pa.ListArray.from_arrays(offsets, values, mask=mask)


def _odd_column(rng, name, n):
    return odd_points(rng, n) if name == "points" else odd_array(rng, n)


def _pick(rng, table):
    index = rng.randrange(table.num_columns)
    return index, table.column_names[index]


def retype_column(rng, table):
    index, name = _pick(rng, table)
    what, array = _odd_column(rng, name, table.num_rows)
    return table.set_column(index, name, array), f"{name}: {what}"


def drop_column(rng, table):
    index, name = _pick(rng, table)
    return table.remove_column(index), f"drop {name}"


def add_column(rng, table):
    name = rng.choice(table.column_names + ["count", "points", "score", "class", "x", ""])
    what, array = _odd_column(rng, name, table.num_rows)
    return table.append_column(name, array), f"add {name!r}: {what}"


def rename_column(rng, table):
    index, name = _pick(rng, table)
    new = rng.choice(["", "X", "count", "points", "image_id", "x ", "\x00", "score"])
    names = table.column_names
    names[index] = new
    return table.rename_columns(names), f"rename {name} to {new!r}"


def null_values(rng, table):
    index, name = _pick(rng, table)
    column = table.column(index).combine_chunks()
    keep = pa.array([rng.random() < 0.5 for _ in range(len(column))], pa.bool_())
    nulled = pc.if_else(keep, column, pa.scalar(None, column.type))
    return table.set_column(index, name, nulled), f"nulls in {name}"


def change_rows(rng, table):
    times = rng.choice([0, 2, 300])
    rows = pa.concat_tables([table] * times) if times else table.slice(0, 0)
    return rows.slice(0, 1000), f"rows x {times}, at most 1000"


TABLE_OPS = [retype_column, retype_column, drop_column, add_column, rename_column,
             null_values, change_rows]


def mutate_table(rng, source):
    for _ in range(20):
        table, done = source.table, []
        try:
            for _ in range(rng.choice([1, 1, 2])):
                op = rng.choice(TABLE_OPS if table.num_columns else [add_column])
                table, what = op(rng, table)
                done.append(f"table {op.__name__}: {what}")
            return source.write(table, rng), done
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
            continue  # a change Arrow or the writer cannot make: the seed picks another
    raise AssertionError(f"no writable table mutation for {source.name}: {done}")


# MATLAB values that are not an N x 2 matrix of finite numbers.
MAT_VALUES = {
    "complex": np.array([[1 + 2j, 3], [4, 5j]]), "text": "abc", "int8": np.array([[1, 2]], np.int8),
    "uint64 max": np.array([[2**64 - 1, 1]], np.uint64), "bool": np.array([[True, False]]),
    "3-d": np.ones((2, 2, 2)), "row vector": np.arange(3.0), "n x 3": np.ones((4, 3)),
    "empty": np.zeros((0, 0)), "empty n x 2": np.zeros((0, 2)),
    "nan and inf": np.array([[np.nan, 1], [np.inf, 2]]), "huge": np.array([[1e308, -1e308]]),
    "sparse": scipy.sparse.csr_matrix(np.ones((2, 2))), "scalar": 5.0,
    "cell": np.array([[np.ones((2, 2)), "x"]], dtype=object),
    "struct": {"a": np.ones((2, 2))}, "struct with location": {"location": "x"},
    "empty cell": np.zeros((0, 0), dtype=object), "many points": np.ones((5000, 2)),
}


def _mat_places(variables):
    """(path, value) of each matrix a converter reads: variables and struct fields."""
    for name, value in variables.items():
        yield (name,), value
        if name == "image_info":
            for key in value[0, 0]:
                yield (name, key), value[0, 0][key]


def mutate_mat(rng, source):
    variables = {name: (np.array([[dict(value[0, 0])]], dtype=object)
                        if name == "image_info" else value)
                 for name, value in source.mat.items()}
    path, _ = rng.choice(list(_mat_places(variables)))
    op = rng.choice(["replace", "replace", "replace", "delete", "rename"])
    parent = variables if len(path) == 1 else variables["image_info"][0, 0]
    if op == "replace":
        what = rng.choice(sorted(MAT_VALUES))
        parent[path[-1]] = MAT_VALUES[what]
    elif op == "delete":
        what = "deleted"
        del parent[path[-1]]
    else:
        what = rng.choice(["renamed to points", "renamed to image_info", "renamed to annPoints"])
        parent[what.split()[-1]] = parent.pop(path[-1])
    return source.write(variables, rng), [f"mat {'.'.join(path)}: {what}"]


FAMILIES = {"bytes": mutate_bytes, "plain bytes": mutate_plain_bytes, "text": mutate_text,
            "json": mutate_json, "table": mutate_table, "mat": mutate_mat}


def mutate(reader, index):
    """Case ``index`` of ``reader``, from its seed alone: (role, file bytes, what was done)."""
    rng = random.Random(f"{reader.name}/{index}")
    role = rng.choice(reader.mutated)
    source = reader.sources[role]
    family = rng.choice(source.families)
    data, done = FAMILIES[family](rng, source)
    return role, data, [f"{role} {source.name}, {family}"] + done


# ------------------------------------------------------------------ running the cases

@dataclass
class Case:
    id: int
    seed: str
    argv: list
    file: str = None               # the mutated file (None: the valid inputs alone)
    done: list = field(default_factory=list)


def make_cases(reader, folder):
    """The valid inputs as case 0, then the MUTATIONS damaged files, each in a folder of
    its own beside the valid inputs it is scored with."""
    valid = folder / "valid"
    valid.mkdir()
    paths = {}
    for role, source in reader.sources.items():
        paths[role] = valid / source.name
        paths[role].write_bytes(source.data)
    cases = []
    for index in range(MUTATIONS + 1):
        where = folder / f"case-{index:04d}"
        where.mkdir()
        files = dict(paths, out=where / "out.parquet", images_out=where / "images.parquet")
        case = Case(index, f"{reader.name}/{index}", [])
        if index:
            role, data, case.done = mutate(reader, index)
            files[role] = where / reader.sources[role].name
            files[role].write_bytes(data)
            case.file = str(files[role])
        case.argv = [arg.format(**{k: str(v) for k, v in files.items()}) for arg in reader.argv]
        cases.append(case)
    return cases


def _wait(process, log):
    """The child's return code, or None once it has logged nothing for CASE_TIMEOUT
    seconds (then it is killed)."""
    size, since = -1, time.monotonic()
    while process.poll() is None:
        now = log.stat().st_size if log.exists() else 0
        if now != size:
            size, since = now, time.monotonic()
        elif time.monotonic() - since > CASE_TIMEOUT:
            process.kill()
            process.wait()
            return None
        time.sleep(0.05)
    return process.returncode


def _death(code):
    if code is None:
        return f"hung: nothing for {CASE_TIMEOUT} s, killed"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"the process exited with status {code} in the middle of the case"


def run_cases(cases, folder):
    """Each case's outcome (the driver's log line, or how the child died during it),
    by case id. A case that kills the child is charged with it, and a new child runs the
    cases after it."""
    driver = folder / "driver.py"
    driver.write_text(DRIVER)
    outcomes, pending, attempt = {}, list(cases), 0
    while pending:
        attempt += 1
        cases_file, log, capture, output = (folder / f"{name}-{attempt}" for name in
                                            ("cases.json", "log.jsonl", "stderr.txt", "driver.txt"))
        cases_file.write_text(json.dumps([{"id": c.id, "argv": c.argv} for c in pending]))
        with open(output, "wb") as out:
            process = subprocess.Popen([sys.executable, str(driver), str(cases_file), str(log),
                                        str(capture), str(MEMORY_LIMIT)],
                                       stdout=out, stderr=subprocess.STDOUT)
            code = _wait(process, log)
        lines = [json.loads(line) for line in log.read_text().splitlines(keepends=True)
                 if line.endswith("\n")] if log.exists() else []
        finished = {line["case"]: line for line in lines if "status" in line}
        outcomes.update(finished)
        started = [line["case"] for line in lines if "started" in line]
        if code == 0:
            assert len(finished) == len(pending), output.read_text()[-3000:]
            break
        assert started and started[-1] not in finished, (
            f"the driver failed outside any case ({_death(code)}):\n"
            + output.read_text()[-3000:])
        killer = started[-1]
        outcomes[killer] = {"case": killer, "died": _death(code),
                            "stderr": capture.read_text(errors="replace")[:4000]
                            if capture.exists() else ""}
        pending = pending[[c.id for c in pending].index(killer) + 1:]
    return outcomes


def problem(outcome):
    """How an outcome breaks the contract (docs/metrics.md, section 8), or None."""
    if "died" in outcome:
        return outcome["died"]
    if outcome["escaped"] is not None:
        return f"main raised {outcome['escaped']}"
    if outcome["status"] not in (0, 2):
        return f"exit status {outcome['status']}"
    if outcome["traceback"]:
        return f"exit status {outcome['status']} with a traceback"
    if outcome["internal"]:
        return f"exit status {outcome['status']} with 'internal error'"
    stray = [line for line in outcome["stderr"].splitlines()
             if not line.startswith("pointscore: ")]
    if stray:
        return "a stderr line not from pointscore (a raw warning?)"
    if any(len(line) > 320 for line in outcome["stderr"].splitlines()):
        return "a stderr line over 320 characters"
    return None


def kind(outcome):
    """A failure's kind, to show one case of each: its problem and the exception named
    on stderr (after 'internal error:' or ending a traceback)."""
    named = re.findall(r"internal error: (\w+)|^(\w+(?:Error|Exception)\b)",
                       outcome["stderr"], re.MULTILINE)
    return problem(outcome), "".join(named[-1]) if named else ""


def file_size(case):
    return os.path.getsize(case.file) if case.file else 0


def report(case, outcome):
    lines = outcome["stderr"].strip().splitlines()
    # A crash's stack (faulthandler's) starts with the innermost call; anything else ends
    # with what matters.
    stderr = "\n      ".join(lines[:8] if "died" in outcome else lines[-6:])
    return (f"case {case.id} (seed {case.seed!r}: {'; '.join(case.done) or 'unchanged'}): "
            f"{problem(outcome)}\n    file {case.file} ({file_size(case)} bytes)\n"
            f"    pointscore {' '.join(case.argv)}\n    stderr: {stderr}")


@pytest.mark.parametrize("name", list(READERS))
def test_mutated_files_exit_0_or_2_without_traceback(name, tmp_path):
    cases = make_cases(READERS[name], tmp_path)
    outcomes = run_cases(cases, tmp_path)
    if outcomes[0].get("status") != 0:
        pytest.fail("the valid inputs fail, so the mutations test nothing:\n"
                    + report(cases[0], outcomes[0]), pytrace=False)
    by_kind = {}
    for case in sorted((c for c in cases if problem(outcomes[c.id])), key=file_size):
        by_kind.setdefault(kind(outcomes[case.id]), []).append(case)
    if by_kind:
        pytest.fail(
            f"{sum(map(len, by_kind.values()))} of {MUTATIONS} mutated files break the exit "
            f"contract, failing in {len(by_kind)} way{'s' if len(by_kind) > 1 else ''}; the "
            "smallest file of each:\n"
            + "\n".join(report(group[0], outcomes[group[0].id])
                        + (f"\n    and cases {', '.join(str(c.id) for c in group[1:])}"
                           if group[1:] else "")
                        for group in by_kind.values()), pytrace=False)
