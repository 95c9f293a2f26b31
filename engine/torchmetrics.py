"""``pointscore.torchmetrics.PointMetric``: PointMetrics as a ``torchmetrics.Metric``
(the ``torchmetrics`` extra), for Lightning and any loop that syncs metrics across
ranks the torchmetrics way.

Its one synced state is each rank's PointMetrics state (counts, exact sums, AP lists;
pointscore.state_bytes), gathered as bytes: ranks exchange what the metrics need,
never the points, and the merge is exact, so ``compute`` on every rank gives the
summary of all ranks' images that ``pointscore.evaluate`` gives on them as tables.
"""
import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities.distributed import gather_all_tensors

from .choices import DEFAULT_KNN_K
from .point_metrics import PointMetrics
from .state_bytes import from_bytes, to_bytes


class PointMetric(Metric):
    """Point metrics for torchmetrics.

    Parameters
    ----------
    thresholds, normalize, match, score_threshold, radius, knn_k, game, breakdown, bins,
    device, level_column, breakdown_by
        As ``pointscore.PointMetrics`` (and ``pointscore.evaluate``) takes them.
    **kwargs
        torchmetrics.Metric's own (``process_group``, ``dist_sync_fn``, ...).

    Notes
    -----
    ``update(preds, target, image_ids=None)`` takes PointMetrics.update's arguments;
    give ``image_ids`` (the dataset index) when several ranks score. ``compute()``
    returns the JSON-ready summary dict. ``forward`` only accumulates: a batch's own
    point metrics are rarely worth a second scoring.
    """

    full_state_update = False
    higher_is_better = None
    is_differentiable = False

    def __init__(self, thresholds=None, normalize="none", match="greedy",
                 score_threshold=None, radius=None, knn_k=DEFAULT_KNN_K, game=None,
                 breakdown=None, bins=None, device="auto", level_column=None,
                 breakdown_by=None, **kwargs):
        super().__init__(**kwargs)
        self.points = PointMetrics(thresholds=thresholds, normalize=normalize, match=match,
                                   score_threshold=score_threshold, radius=radius,
                                   knn_k=knn_k, game=game, breakdown=breakdown, bins=bins,
                                   level_column=level_column, breakdown_by=breakdown_by,
                                   device=device)
        # Filled with the rank's packed state only while syncing, then with every rank's.
        self.add_state("packed", default=[], dist_reduce_fx=None, persistent=False)

    def update(self, preds, target, image_ids=None):
        self.points.update(preds, target, image_ids)

    def forward(self, preds, target, image_ids=None):
        self.update(preds, target, image_ids)

    def _sync_dist(self, dist_sync_fn=gather_all_tensors, process_group=None):
        packed = np.frombuffer(to_bytes(self.points.state_dict()), np.uint8)
        self.packed = [torch.from_numpy(packed.copy()).to(self.device)]
        super()._sync_dist(dist_sync_fn, process_group)

    def compute(self):
        if not self.packed:  # not synced: this rank's images
            return self.points.compute()
        merged = None
        for packed in self.packed:
            rank = PointMetrics.from_state_dict(from_bytes(packed.cpu().numpy()))
            merged = rank if merged is None else merged.merge(rank)
        return merged.compute()

    def reset(self):
        super().reset()
        self.points.reset()

    def merge_state(self, incoming_state):
        """Merge another PointMetric (or its PointMetrics) into this one."""
        other = incoming_state.points if isinstance(incoming_state, PointMetric) \
            else incoming_state
        self.points = self.points.merge(other)
