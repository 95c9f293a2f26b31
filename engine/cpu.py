"""The CPU backend: the Numba CPU kernels (kernels.rules), in threads over groups."""
import numpy as np

from pointscore.kernels import candidates, greedy, rules

from .group_threads import over_groups
from .limits import TRUSTED

NO_AP = np.zeros(0)
NO_LISTS = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))


def pair_lists(batch, tmax, scales=None, limits=TRUSTED):
    """Every pair within tmax (in units of ``scales`` when given), per prediction:
    kernels.candidates.pair_lists, within the limits' pair budget."""
    lists = candidates.pair_lists(batch.gt_x, batch.gt_y, NO_AP if scales is None else scales,
                                  batch.gt_off, batch.pred_x, batch.pred_y, batch.pred_off,
                                  tmax, limits.pairs, over_groups)
    if lists[0][-1] > limits.pairs:
        raise limits.exceeded("pairs", int(lists[0][-1]),
                              "candidate pairs within the largest threshold")
    return lists


class CpuBackend:
    """Numba CPU kernels, in threads over (image, class) groups."""
    name = "cpu"
    xp = np

    def match(self, batch, tmax, kept, rule, t2_thresholds, scales=None, lists=None,
              limits=TRUSTED):
        """The rule's matching at tmax (kernels.rules: GREEDY, NEAREST or NO_RULE) and,
        for a non-empty t2_thresholds, COCO's AP matching per threshold: (match_gt,
        match_key, is_tp (n_t, n_pred)). Candidates come from ``lists`` (pair_lists)
        when given, else from the lazy grid search; with ``scales`` (a scale per gt),
        always from lists, computed here when not given."""
        if scales is not None and lists is None:
            lists = pair_lists(batch, tmax, scales, limits)
        score = batch.pred_score if t2_thresholds.size else NO_AP
        lists = NO_LISTS if lists is None else lists
        n_pred = batch.pred_x.size
        match_gt = np.full(n_pred, -1, np.int64)
        match_key = np.full(n_pred, np.inf)
        is_tp = np.zeros((t2_thresholds.size, n_pred), np.bool_)
        piled = np.zeros(batch.pred_off.size - 1, np.bool_)

        def run(start, stop):
            rules.match_groups(batch.pred_off[start:stop + 1], batch.gt_off[start:stop + 1],
                               batch.pred_x, batch.pred_y, batch.gt_x, batch.gt_y, kept, tmax,
                               rule, score, t2_thresholds, *lists, match_gt, match_key, is_tp,
                               piled[start:stop])

        over_groups(run, batch.pred_off, batch.gt_off)
        if piled.any():
            greedy.piled_groups(batch.pred_off, batch.gt_off, batch.pred_x, batch.pred_y,
                                batch.gt_x, batch.gt_y, kept, tmax, *lists,
                                np.flatnonzero(piled), match_gt, match_key)
        return match_gt, match_key, is_tp
