"""AP of weighted bootstrap replicates (pointscore.bootstrap), in Numba.

A replicate takes image i w_i times. Each class keeps its predictions in accumulation
order (descending score) with, per threshold, the runs of consecutive true positives;
a replicate's interpolated precision at the 101 recall points then follows from the
copies before each run, with the very IEEE operations of kernels.ap, so each
replicate's AP equals the one of the literally duplicated dataset bit for bit.
"""
import numpy as np

from .ap import EPS, RECALL_POINTS
from .jit import njit

# tp / n beats the best precision so far only if tp > best * n; this margin outweighs
# the product's rounding, so a skipped division could never have raised the best.
BELOW_ONE = 1.0 - 2.0 ** -50


@njit(cache=True)
def _precision(tp, n):
    """Precision after n predictions, tp of them true, as kernels/ap.py computes it."""
    return tp / ((n - tp) + tp + EPS)


@njit(cache=True)
def _recall_steps(n_gt):
    """need[k]: the fewest true positives whose recall tp / n_gt reaches recall point k,
    by the very comparison the one-pass kernel makes (recall >= point)."""
    need = np.empty(RECALL_POINTS.size, np.int64)
    for k in range(RECALL_POINTS.size):
        tp = min(int(RECALL_POINTS[k] * n_gt), n_gt)
        while tp > 0 and (tp - 1) / n_gt >= RECALL_POINTS[k]:
            tp -= 1
        while tp / n_gt < RECALL_POINTS[k]:
            tp += 1
        need[k] = tp
    return need


@njit(cache=True)
def _copies_before(image_weight, pred_image, positions, out):
    """out[k]: the copies of the predictions before prediction positions[k]."""
    copies = j = 0
    for k in range(positions.size):
        while j < positions[k]:
            copies += image_weight[pred_image[j]]
            j += 1
        out[k] = copies


@njit(cache=True)
def _threshold_precision(copies_at, run_begin, run_end, need, out):
    """One threshold: the interpolated precision at the recall points into out (101,).

    As precision_at_recall_points_cpu, which keeps each stretch's maximum (the largest
    precision between consecutive recall points) and takes maxima from each point on,
    but looking only at the last copy of each run of true positives: false positives
    lower precision without moving recall, and along true positives precision never
    falls, so every other copy is outdone by a later one in its stretch or, when the
    run reaches a recall point first, by one in a later stretch, which the maxima from
    each point on take in too. A run [b, e) is copies_at[e] - copies_at[b] true
    positives after copies_at[b] copies.
    """
    stretch_max = np.zeros(need.size)
    reached, tp, best = 1, 0, 0.0  # recall point 0 is reached by the first prediction
    for k in range(run_begin.size):
        start = copies_at[run_begin[k]]
        w = copies_at[run_end[k]] - start
        if w == 0:
            continue
        tp += w
        while reached < need.size and need[reached] <= tp:  # close the stretches left
            stretch_max[reached - 1] = best
            best = 0.0
            reached += 1
        n = start + w
        # tp / n beats best only if tp > best * n; the margin outweighs the product's
        # rounding, so a skipped division could never have raised best.
        if tp > best * n * BELOW_ONE:
            best = max(best, _precision(tp, n))
    stretch_max[reached - 1] = best
    envelope = 0.0
    for r in range(reached - 1, -1, -1):
        envelope = max(envelope, stretch_max[r])
        out[r] = envelope


@njit(cache=True)
def _class_precision(image_weight, pred_image, positions, run_off, run_begin, run_end, n_gt,
                     copies_at, out):
    """One class in one replicate: interpolated precision (n_t, 101) into out, each
    prediction taken image_weight[its image] times, its copies adjacent."""
    _copies_before(image_weight, pred_image, positions, copies_at)
    need = _recall_steps(n_gt)
    for t in range(out.shape[0]):
        runs = slice(run_off[t], run_off[t + 1])
        _threshold_precision(copies_at, run_begin[runs], run_end[runs], need, out[t])


@njit(cache=True, nogil=True)
def block_precision(weights, pred_image, class_off, positions, position_off, run_begin,
                    run_end, run_off, n_t, n_gt, block, n_blocks, out):
    """Interpolated precision at the 101 recall points, into out (m, n_c, n_t, 101), of
    the weighted replicates r = block, block + n_blocks, ... (ImageStats' AP lists);
    left at zero for a class without ground truth in a replicate (left out later).
    Free of the GIL, so that blocks run in threads (a ``prange`` loop compiled every
    callee a second time)."""
    m, n_c = weights.shape[0], class_off.size - 1
    largest = np.max(np.diff(position_off)) if n_c else 0
    copies_at = np.empty(largest, np.int64)
    for r in range(block, m, n_blocks):
        for c in range(n_c):
            if n_gt[r, c] > 0:
                at = positions[position_off[c]:position_off[c + 1]]
                _class_precision(weights[r], pred_image[class_off[c]:class_off[c + 1]],
                                 at, run_off[c * n_t:(c + 1) * n_t + 1], run_begin,
                                 run_end, n_gt[r, c], copies_at[:at.size], out[r, c])
