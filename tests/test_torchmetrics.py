"""The torchmetrics adapter (pointscore.torchmetrics): skipped where torch or
torchmetrics is not installed (CI installs PyTorch's CPU build in a step of its own).
Two CPU processes under torch.distributed (gloo) each score half of the images; after
the sync every rank computes evaluate's summary of all of them, bit for bit."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_point_metrics import image_dicts, same

import pointscore

torch = pytest.importorskip("torch")
pytest.importorskip("torchmetrics")

from pointscore.torchmetrics import PointMetric  # noqa: E402 (after the skips)

OPTIONS = {"thresholds": [4.0, 8.0], "device": "cpu"}
RANK = """
import json, sys
import numpy as np
import torch
import torch.distributed as dist
sys.path.insert(0, {tests!r})
from test_torchmetrics import crowd, halves
from pointscore.torchmetrics import PointMetric

rank = int(sys.argv[1])
dist.init_process_group("gloo", init_method="tcp://127.0.0.1:{port}", rank=rank,
                        world_size=2)
ids, preds, targets = halves()[rank]
metric = PointMetric(**{options!r})
for start in range(0, len(ids), 3):  # tensors, as a validation loop has them
    batch = slice(start, start + 3)
    metric.update([{{k: torch.as_tensor(v) for k, v in p.items()}} for p in preds[batch]],
                  [{{k: torch.as_tensor(np.asarray(v)) for k, v in t.items()}}
                   for t in targets[batch]], image_ids=torch.as_tensor(ids[batch]))
summary = metric.compute()
with open(sys.argv[2], "w") as out:
    json.dump({{"summary": summary, "local": metric.points.compute()}}, out)
dist.destroy_process_group()
"""


def crowd():
    from bench.data import crowd as generate
    return generate(n_images=12, target_gt=600, max_per_image=120, n_classes=2, seed=4)


def halves():
    """The images as (ids, preds, targets), split between two ranks (every other image,
    as a distributed sampler deals them)."""
    ids, preds, targets = image_dicts(*crowd())
    return [([ids[k] for k in rank], [preds[k] for k in rank], [targets[k] for k in rank])
            for rank in (range(0, len(ids), 2), range(1, len(ids), 2))]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_synced_equal_evaluate_on_all_images(tmp_path):
    tests = str(Path(__file__).resolve().parent)
    script = RANK.format(tests=tests, port=free_port(), options=OPTIONS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([tests, str(Path(tests).parent)])}
    ranks = [subprocess.Popen([sys.executable, "-c", script, str(rank),
                               str(tmp_path / f"{rank}.json")], env=env,
                              stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    for rank in ranks:
        _, err = rank.communicate(timeout=300)
        assert rank.returncode == 0, err[-3000:]
    expected = pointscore.evaluate(*crowd(), **OPTIONS).summary
    results = [json.loads((tmp_path / f"{rank}.json").read_text()) for rank in (0, 1)]
    for result in results:
        assert same(result["summary"], expected)
    # after compute each rank keeps its own images only, to go on accumulating
    assert results[0]["local"]["images"] + results[1]["local"]["images"] == \
        expected["images"]


def test_one_process_accumulates_resets_and_merges():
    first, second = halves()
    expected = pointscore.evaluate(*crowd(), **OPTIONS).summary
    a, b = PointMetric(**OPTIONS), PointMetric(**OPTIONS)
    for metric, (ids, preds, targets) in ((a, first), (b, second)):
        metric(preds, targets, image_ids=ids)  # forward accumulates
    a.merge_state(b)
    assert same(a.compute(), expected)
    a.reset()
    ids, preds, targets = first
    a.update(preds[:1], targets[:1], image_ids=ids[:1])
    assert a.compute()["images"] == 1
    assert np.isfinite(a.compute()["counting"]["mae"])
