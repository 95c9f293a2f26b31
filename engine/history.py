"""The history store: every run of a nightly job, one Parquet file each, in one
directory that many jobs may write at once (a file is written under a hidden name and
renamed into place, so a reader never sees half of one; no two runs share a name).
DuckDB, pandas or pyarrow read the directory as one table.

A run's row: ``run_id``, ``time`` (UTC), ``name``, ``gt_hash`` (content_hash),
``config`` (the scoring options as JSON, the device left out), ``version``, ``gate``
("passed", "failed" or null), ``baseline`` (the run it was gated against), the headline
metrics ``map``, ``mae``, ``rmse``, ``nae`` and ``f1`` (per threshold), ``summary``
(JSON), and what a later gate needs: ``state`` (the metric state as
state_bytes) and ``per_image`` (the per-image table as Arrow IPC).
"""
import datetime
import json
import os
import secrets
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from . import remote
from .errors import InputError, label_of, option, shown
from .outputs import destination
from .state_bytes import from_bytes, table_from_bytes, table_to_bytes, to_bytes

LISTED = ("run_id", "time", "name", "gt_hash", "config", "version", "gate", "baseline",
          "map", "mae", "rmse", "nae", "f1")
PREFIX, SUFFIX = "run-", ".parquet"


@dataclass
class StoredRun:
    """A stored run as a gate compares it: its row (LISTED columns), per-image table and
    metric state (a Report's two fields the paired bootstrap reads)."""
    row: dict
    summary: dict
    per_image: pa.Table
    state: object


def config_key(summary):
    """The scoring options that decide the numbers, as JSON: the device gives the same
    bits, so it is left out."""
    config = {k: v for k, v in summary["config"].items() if k != "device"}
    return json.dumps(config, sort_keys=True)


SCHEMA = pa.schema([
    ("run_id", pa.string()), ("time", pa.timestamp("us", tz="UTC")), ("name", pa.string()),
    ("gt_hash", pa.string()), ("config", pa.string()), ("version", pa.string()),
    ("gate", pa.string()), ("baseline", pa.string()), ("map", pa.float64()),
    ("mae", pa.float64()), ("rmse", pa.float64()), ("nae", pa.float64()),
    ("f1", pa.list_(pa.float64())), ("summary", pa.string()), ("state", pa.binary()),
    ("per_image", pa.binary()),
])


def append(store, report, *, name, gt_hash, gate=None, baseline=None, now=None):
    """Write one run into the store (created when missing); returns its run id."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    run_id = f"{now:%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}"
    summary = report.summary
    micro = summary.get("micro", {})
    row = {"run_id": run_id, "time": now, "name": name, "gt_hash": gt_hash,
           "config": config_key(summary), "version": summary["version"], "gate": gate,
           "baseline": baseline, "map": summary.get("map"),
           "mae": summary["counting"]["mae"], "rmse": summary["counting"]["rmse"],
           "nae": summary["counting"]["nae"], "f1": micro.get("f1"),
           "summary": json.dumps(summary, sort_keys=True),
           "state": to_bytes(report.state.state_dict()),
           "per_image": table_to_bytes(report.per_image)}
    table = pa.Table.from_pylist([row], schema=SCHEMA)
    name = f"{PREFIX}{run_id}{SUFFIX}"
    if not remote.is_remote(store):
        os.makedirs(store, exist_ok=True)
    # Whole or not at all: a hidden file renamed into place, or an object uploaded whole.
    with destination(remote.join(store, name) if remote.is_remote(store)
                     else os.path.join(store, name)) as dest:
        pq.write_table(table, dest.path)
    return run_id


def check_store(store):
    """An InputError unless runs can be kept in ``store``: a directory, or a new one in
    an existing directory, writable (an object store is checked when written)."""
    if remote.is_remote(store):
        return
    label = f"{option('history')} {label_of(store)}"
    if os.path.exists(store):
        if not os.path.isdir(store):
            raise InputError(f"{label}: exists and is not a directory")
        if not os.access(store, os.W_OK | os.X_OK):
            raise InputError(f"{label}: cannot write there")
        return
    parent = os.path.dirname(os.path.abspath(store))
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{label}: cannot be made: {label_of(parent)} is not a writable "
                         "directory")


def _files(store):
    """(filesystem or None, path) of each stored run."""
    if remote.is_remote(store):
        import pyarrow.fs as pafs
        filesystem, path = remote.resolve(store)
        found = filesystem.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        return sorted((filesystem, f.path) for f in found if f.base_name.startswith(PREFIX)
                      and f.base_name.endswith(SUFFIX))
    if not os.path.isdir(store):
        return []
    return sorted((None, os.path.join(store, f)) for f in os.listdir(store)
                  if f.startswith(PREFIX) and f.endswith(SUFFIX))


def runs(store):
    """Every stored run's LISTED columns, oldest first: a list of dicts."""
    rows = []
    for filesystem, path in _files(store):
        try:
            rows += pq.read_table(path, columns=list(LISTED), filesystem=filesystem).to_pylist()
        except (OSError, pa.ArrowInvalid, KeyError) as exc:
            raise InputError(f"{label_of(path)}: not a pointscore history run: "
                             f"{str(exc).splitlines()[0]}") from None
    return sorted(rows, key=lambda row: (row["time"], row["run_id"]))


def load(store, run_id):
    """One stored run with what a gate needs (StoredRun)."""
    from .state import MetricState
    name = f"{PREFIX}{run_id}{SUFFIX}"
    if remote.is_remote(store):
        filesystem, path = remote.resolve(remote.join(store, name))
    else:
        filesystem, path = None, os.path.join(store, name)
    table = pq.read_table(path, filesystem=filesystem)
    row = table.select(list(LISTED)).to_pylist()[0]
    per_image = table_from_bytes(table["per_image"][0].as_py())
    state = MetricState.from_state_dict(from_bytes(table["state"][0].as_py()))
    return StoredRun(row, json.loads(table["summary"][0].as_py()), per_image, state)


def baseline_of(store, which, gt_hash, config):
    """The run a gate compares with: ``last`` (the newest run on the same ground truth
    and scoring options that did not fail its gate; None when there is none yet), a
    run name (its newest run) or a run id. A named run or id on another ground truth
    or other options is an InputError."""
    every = runs(store)
    if which == "last":
        fitting = [row for row in every if row["gt_hash"] == gt_hash
                   and row["config"] == config and row["gate"] != "failed"]
        return load(store, fitting[-1]["run_id"]) if fitting else None
    chosen = [row for row in every if which in (row["run_id"], row["name"])]
    if not chosen:
        raise InputError(f"{option('baseline')} {shown(which)}: no such run or name in "
                         f"{label_of(store)} ({len(every)} runs)")
    row = chosen[-1]
    if row["gt_hash"] != gt_hash:
        raise InputError(f"{option('baseline')} {shown(which)}: run {row['run_id']} scored "
                         "another ground truth (its content differs): a gate compares runs "
                         "on the same one")
    if row["config"] != config:
        theirs, mine = json.loads(row["config"]), json.loads(config)
        differ = sorted(k for k in set(theirs) | set(mine) if theirs.get(k) != mine.get(k))
        raise InputError(f"{option('baseline')} {shown(which)}: run {row['run_id']} was "
                         f"scored with other options ({', '.join(differ)})")
    return load(store, row["run_id"])
