"""``--resume``: a streamed or distributed run that keeps each finished shard (its metric
state, per-image rows, match rows and image rows) in ``SCRATCH/pointscore-resume-<job>``
(one folder per job: the inputs it names), so
that a run killed part way goes on where it stopped. Each shard is written under a
hidden name and renamed into place once whole, so a kill leaves finished shards or
nothing. A manifest records what the run reads and how it scores; a run with other
inputs (a file's size or modification time) or options is refused, not mixed in.
After a run completes, its checkpoints are removed.
"""
import hashlib
import json
import os
import shutil
import tempfile

import numpy as np

from . import remote
from .errors import InputError, label_of, option
from .outputs import destination
from .state_bytes import from_bytes, table_from_bytes, table_to_bytes, to_bytes
from .version import package_version

FOLDER = "pointscore-resume"
MANIFEST = "manifest.json"


def _identity(source, role):
    """What tells a changed input: each file's size and modification time."""
    if not isinstance(source, (str, os.PathLike)):
        raise InputError(f"{option('resume')} needs inputs that are files; the {role} table "
                         "is held in memory")
    path = os.fspath(source)
    if remote.is_remote(path):
        filesystem, located, files = remote.input_files(path)
        return sorted([f.path, f.size, f.mtime_ns]
                      for f in filesystem.get_file_info(files))
    if os.path.isdir(path):
        found = []
        for root, _, names in os.walk(path):
            for name in names:
                file = os.path.join(root, name)
                stat = os.stat(file)
                found.append([os.path.relpath(file, path), stat.st_size, stat.st_mtime_ns])
        return sorted(found)
    stat = os.stat(path)
    return [os.path.abspath(path), stat.st_size, stat.st_mtime_ns]


class Checkpoints:
    """The finished shards of one run, in ``folder``."""

    def __init__(self, folder):
        self.folder = folder

    @classmethod
    def open(cls, scratch_dir, inputs, scoring, shard_points, matches):
        """The run's checkpoints: those a killed run left, or a new, empty set.

        Parameters
        ----------
        scratch_dir : str or None
            Where they are kept (default TMPDIR).
        inputs : dict
            Role -> path (None for a missing images table).
        scoring : dict
            The scoring options (ScoringOptions.scoring()).
        shard_points : int
        matches : bool
            Whether match rows are kept.

        Raises
        ------
        InputError
            When the folder holds a run of other inputs or options.
        """
        # One folder per job (the inputs it names), so that jobs sharing a scratch
        # directory never meet; within it, the manifest tells a changed input (sizes,
        # times) or changed options, which are refused rather than mixed in.
        identities = {f"input {role}": None if path is None else _identity(path, role)
                      for role, path in inputs.items()}
        names = {role: None if path is None else os.fspath(path)
                 for role, path in inputs.items()}
        digest = hashlib.sha256(json.dumps(names, sort_keys=True).encode()).hexdigest()
        folder = os.path.join(scratch_dir or tempfile.gettempdir(), f"{FOLDER}-{digest[:16]}")
        parts = {"version": package_version(), "scoring": scoring,
                 "shard_points": shard_points, "matches": matches, **identities}
        manifest = os.path.join(folder, MANIFEST)
        if os.path.exists(manifest):
            with open(manifest, encoding="utf-8") as file:
                stored = json.load(file)
            differ = sorted(k for k in set(stored) | set(parts)
                            if json.dumps(stored.get(k), sort_keys=True)
                            != json.dumps(parts.get(k), sort_keys=True))
            if differ:
                raise InputError(f"{option('resume')}: {label_of(folder)} holds a run with "
                                 f"other {', '.join(differ)}: remove it to start afresh")
        else:
            os.makedirs(folder, exist_ok=True)
            _write(manifest, json.dumps(parts, sort_keys=True).encode())
        return cls(folder)

    def _path(self, number):
        return os.path.join(self.folder, f"shard-{number:08d}.npz")

    def finished(self):
        """The numbers of the shards kept."""
        return {int(name[6:14]) for name in os.listdir(self.folder)
                if name.startswith("shard-") and name.endswith(".npz")}

    def save(self, number, result):
        """Keep a finished shard (a pipeline.ShardResult)."""
        tables = {name: np.zeros(0, np.uint8) if getattr(result, name) is None
                  else np.frombuffer(table_to_bytes(getattr(result, name)), np.uint8)
                  for name in ("per_image", "matches", "images")}
        _write(self._path(number), to_bytes({"state": result.state.state_dict(), **tables}))

    def load(self, number, result_type):
        """A kept shard, as ``result_type`` (pipeline.ShardResult)."""
        from .state import MetricState
        with open(self._path(number), "rb") as file:
            data = from_bytes(file.read())
        tables = {name: None if data[name].size == 0 else table_from_bytes(data[name])
                  for name in ("per_image", "matches", "images")}
        return result_type(MetricState.from_state_dict(data["state"]), **tables)

    def remove(self):
        """The run is complete: its checkpoints go."""
        shutil.rmtree(self.folder, ignore_errors=True)


def _write(path, data):
    """Whole or not at all: a hidden file renamed into place (outputs.destination)."""
    with destination(path) as dest, dest.open(binary=True) as file:
        file.write(data)
