"""The benchmark protocols of the field, one name each (docs/protocols.md).

A protocol is the scoring options that reproduce a published evaluation script, and
that script's table computed from pointscore's summaries with the script's own formulas
(``P = tp / (tp + fp + 1e-20)``, ``F1 = 2PR / (P + R)``), so that the numbers are the
script's, while the summary itself keeps the contract's. A protocol with two radii
(NWPU-Crowd's sigma_s and sigma_l) scores a further pass for the second one.
"""
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .choices import DEFAULT_BINS
from .errors import InputError, option
from .summary import union_counting

EPS = 1e-20  # the scripts' guard against an empty denominator
NWPU_LEVELS = tuple(range(6))  # the head-size levels of NWPU-Crowd's script (num_classes)


@dataclass(frozen=True)
class Protocol:
    """One published evaluation protocol.

    Attributes
    ----------
    name, title : str
        Its flag value and its name in words.
    source : str
        Where the script or table it follows comes from.
    sets : dict
        The scoring options it sets (explicit options override them).
    image_columns : dict
        Options set to an images-table column only when the table has that column.
    passes : dict
        Further passes, by name: the options they change (NWPU-Crowd's sigma_s).
    rank_by : str
        ``compare``'s ranking metric under this protocol, unless one is given.
    results : callable
        (main summary, {pass name: summary}, main MetricState) -> the protocol's table
        (a dict).
    rows : callable
        The table -> [(label, value)] in the script's own words, for the terminal.
    """
    name: str
    title: str
    source: str
    sets: dict
    results: Callable
    rows: Callable
    rank_by: str = "mae"
    image_columns: dict = field(default_factory=dict)
    passes: dict = field(default_factory=dict)

    def options(self, given, image_columns=()):
        """The scoring options of a run: the protocol's, with the options ``given``
        (those not None) over them; ``image_columns``: the images table's columns."""
        out = dict(self.sets)
        out.update({name: column for name, column in self.image_columns.items()
                    if column in image_columns})
        given = {name: value for name, value in given.items() if value is not None}
        if "breakdown" in given and "bins" not in given:
            out.pop("bins", None)  # the protocol's edges are counts: not for another breakdown
        out.update(given)
        return out


def get(name):
    """The protocol called ``name``.

    Raises
    ------
    InputError
        When there is none.
    """
    if name not in PROTOCOLS:
        raise InputError(f"{option('protocol')} must be one of {', '.join(PROTOCOLS)}, got "
                         f"{name!r}")
    return PROTOCOLS[name]


def localisation(summary, d):
    """P, R and F1 at the threshold d from the summary's summed TP/FP/FN, as the
    scripts compute them; None for count-only predictions and when the run's
    thresholds (an explicit --thresholds) lack d (F1 None where P + R = 0, where the
    scripts divide by zero)."""
    thresholds = summary["config"]["thresholds"]
    t = thresholds.index(d) if d in thresholds else None
    tp = None if t is None else summary["micro"]["tp"][t]
    if tp is None:
        return None
    fp, fn = summary["micro"]["fp"][t], summary["micro"]["fn"][t]
    precision = tp / (tp + fp + EPS)
    recall = tp / (tp + fn + EPS)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else None
    return {"precision": precision, "recall": recall, "f1": f1}


def _level_recall(summary, d, levels):
    """Recall at the threshold d of each of the fixed ``levels`` as NWPU-Crowd's script
    has it: TP / (points + 1e-20), so 0 for a level without points, and their plain
    mean over all levels."""
    t = summary["config"]["thresholds"].index(d)
    found = summary.get("levels") or {}
    recall = np.array([(found[str(v)]["tp"][t] if str(v) in found else 0)
                       / ((found[str(v)]["gt_points"] if str(v) in found else 0) + EPS)
                       for v in levels])
    return {str(v): float(r) for v, r in zip(levels, recall)}, float(recall.mean())


def _counting(summary):
    counting = summary["counting"]
    return {"mae": counting["mae"], "mse": counting["rmse"]}


def _mean(values):
    """The plain mean of the values that are defined; None when none is."""
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def _by_label(summary, metric="mae"):
    """{label: counting metric} of breakdown_by's groups, or None without them."""
    groups = summary.get("breakdown_by")
    if groups is None:
        return None
    return {label: group["counting"][metric] for label, group in groups["groups"].items()}


# -- NWPU-Crowd ------------------------------------------------------------------------------

def _nwpu_results(main, passes, state):
    out = {}
    for name, summary in (("sigma_s", passes.get("sigma_s")), ("sigma_l", main)):
        rates = None if summary is None else localisation(summary, 1.0)
        if rates is not None and "levels" in summary:
            rates["level_recall"], rates["level_recall_mean"] = \
                _level_recall(summary, 1.0, NWPU_LEVELS)
        out[name] = rates
    out.update(_counting(main), nae=main["counting"]["nae"])
    bins = _count_bins(main, DEFAULT_BINS)
    scene = None if bins is None else \
        {f"S{b}": group["counting"]["mae"] for b, group in enumerate(bins)}
    out["scene_mae"] = scene
    out["scene_mae_mean"] = None if scene is None else _mean(scene.values())
    luminance = _by_label(main)
    if luminance is not None:
        out["luminance_mae"], out["luminance_mae_mean"] = luminance, _mean(luminance.values())
    return out


def _count_bins(summary, edges):
    """The summary's breakdown bins when they are by true count with these edges (an
    explicit --breakdown or --bins may have changed them), else None."""
    breakdown = summary.get("breakdown")
    if breakdown is None or breakdown["by"] != "count" or breakdown["edges"] != list(edges):
        return None
    return breakdown["bins"]


def _nwpu_rows(results):
    rows = []
    for name, word in (("sigma_s", "small"), ("sigma_l", "large")):
        rates = results[name]
        if rates is None:
            continue
        rows += [(f"AP_{word}", rates["precision"]), (f"AR_{word}", rates["recall"]),
                 (f"F1m_{word}", rates["f1"])]
        if "level_recall" in rates:
            rows += [(f"AR_{word}_category {level}", value)
                     for level, value in rates["level_recall"].items()]
            rows.append((f"AR_{word}_category avg", rates["level_recall_mean"]))
    rows += [("MAE", results["mae"]), ("MSE", results["mse"]), ("NAE", results["nae"])]
    if results["scene_mae"] is not None:
        rows += [(f"scene {level} MAE", value) for level, value in results["scene_mae"].items()]
        rows.append(("scene avg MAE", results["scene_mae_mean"]))
    if "luminance_mae" in results:
        rows += [(f"luminance {label} MAE", value)
                 for label, value in results["luminance_mae"].items()]
        rows.append(("luminance avg MAE", results["luminance_mae_mean"]))
    return rows


# -- FIDTM's UCF-QNRF and ShanghaiTech localisation --------------------------------------------

def _qnrf_results(main, passes, state):
    per = [localisation(main, d) for d in main["config"]["thresholds"]]
    out = {}
    if per[0] is not None:
        for name in ("precision", "recall", "f1"):
            values = [rates[name] for rates in per]
            # The script's np.mean of the list; an F1 it could not compute (P = R = 0:
            # a ZeroDivisionError there) leaves the mean undefined.
            out[name] = None if None in values else float(np.mean(values))
    else:
        out.update(precision=None, recall=None, f1=None)
    out.update(_counting(main))
    return out


def _qnrf_rows(results):
    return [("AP (mean over 1..100 px)", results["precision"]),
            ("AR (mean over 1..100 px)", results["recall"]),
            ("F1m (mean over 1..100 px)", results["f1"]),
            ("MAE", results["mae"]), ("MSE", results["mse"])]


def _shanghaitech_results(main, passes, state):
    return {"sigma_s": localisation(main, 4.0), "sigma_l": localisation(main, 8.0),
            **_counting(main)}


def _shanghaitech_rows(results):
    rows = []
    for name, word in (("sigma_s", "small (4 px)"), ("sigma_l", "large (8 px)")):
        if results[name] is not None:
            rows += [(f"AP_{word}", results[name]["precision"]),
                     (f"AR_{word}", results[name]["recall"]),
                     (f"F1m_{word}", results[name]["f1"])]
    return rows + [("MAE", results["mae"]), ("MSE", results["mse"])]


# -- JHU-Crowd++ -------------------------------------------------------------------------------

JHU_RANGES = ("low", "medium", "high")
JHU_EDGES = (50.0, 500.0)


def _jhu_results(main, passes, state):
    out = _counting(main)
    bins = _count_bins(main, JHU_EDGES)
    out["count_range"] = None if bins is None else \
        {name: _jhu_cell(group["images"], group["counting"])
         for name, group in zip(JHU_RANGES, bins)}
    groups = main.get("breakdown_by")
    if groups is not None:
        out["weather"] = {label: _jhu_cell(group["images"], group["counting"])
                          for label, group in groups["groups"].items()}
        # The paper's "Weather" column: every image with a weather degradation (not 0).
        degraded = [k for k, label in enumerate(state.labels) if str(label) != "0"]
        out["weather_degraded"] = _jhu_cell(
            int(np.sum(state["label_images"][degraded])),
            union_counting(state, "label", degraded))
    return out


def _jhu_cell(images, counting):
    return {"images": images, "mae": counting["mae"], "mse": counting["rmse"]}


def _jhu_rows(results):
    rows = [("MAE", results["mae"]), ("MSE", results["mse"])]
    groups = {**(results["count_range"] or {}), **{f"weather {k}": v for k, v in
                                           (results.get("weather") or {}).items()}}
    if "weather_degraded" in results:
        groups["weather (any, 1-3)"] = results["weather_degraded"]
    for name, group in groups.items():
        rows += [(f"{name} MAE", group["mae"]), (f"{name} MSE", group["mse"])]
    return rows


# -- P2PNet's nAP ------------------------------------------------------------------------------

def _p2pnet_results(main, passes, state):
    return {"nap": {f"{d!r}": ap for d, ap in zip(main["config"]["thresholds"],
                                                  main["macro"]["ap"])},
            **_counting(main)}


def _p2pnet_rows(results):
    return [(f"nAP@{d}", ap) for d, ap in results["nap"].items()] + \
        [("MAE", results["mae"]), ("MSE", results["mse"])]


PROTOCOLS = {p.name: p for p in (
    Protocol("nwpu", "NWPU-Crowd localisation and counting",
             "NWPU-Crowd's localisation evaluation script (gjy3035/NWPU-Crowd-Sample-Code-"
             "for-Localization, eval/eval.py) and its counting leaderboard",
             sets={"radius": "sigma_l", "thresholds": (1.0,), "match": "kuhn",
                   "level_column": "level", "breakdown": "count", "bins": DEFAULT_BINS},
             image_columns={"breakdown_by": "luminance"},
             passes={"sigma_s": {"radius": "sigma_s"}},
             rank_by="f1@1", results=_nwpu_results, rows=_nwpu_rows),
    Protocol("qnrf", "UCF-QNRF localisation (FIDTM)",
             "FIDTM's UCF-QNRF evaluation (dk-liang/FIDTM, local_eval/eval_qnrf.py)",
             sets={"thresholds": tuple(float(d) for d in range(1, 101)),
                   "match": "kuhn"},
             results=_qnrf_results, rows=_qnrf_rows),
    Protocol("shanghaitech", "ShanghaiTech localisation (FIDTM) and counting",
             "FIDTM's evaluation (dk-liang/FIDTM, local_eval/eval.py with sigma_s = 4, "
             "sigma_l = 8 from gt_generate.py)",
             sets={"thresholds": (4.0, 8.0), "match": "kuhn"},
             results=_shanghaitech_results, rows=_shanghaitech_rows),
    Protocol("jhu", "JHU-Crowd++ counting",
             "JHU-Crowd++'s paper (Sindagi et al., TPAMI 2020): MAE/MSE overall, by count "
             "range and by weather",
             sets={"thresholds": (4.0, 8.0), "match": "kuhn", "breakdown": "count",
                   "bins": JHU_EDGES},
             image_columns={"breakdown_by": "weather"},
             results=_jhu_results, rows=_jhu_rows),
    Protocol("p2pnet", "P2PNet nAP@delta",
             "P2PNet's paper (Song et al., ICCV 2021): nAP with delta times the mean "
             "distance to the 3 nearest ground-truth neighbours",
             sets={"normalize": "knn", "knn_k": 3, "thresholds": (0.05, 0.25, 0.5),
                   "match": "greedy"},
             rank_by="map", results=_p2pnet_results, rows=_p2pnet_rows),
)}


def resolve(name, scoring, images, limits):
    """(the Protocol or None, the scoring options of the run): ``scoring`` as given,
    None where not given, completed by the protocol ``name`` (when not None). The
    images table is read for its column names when the protocol looks for one."""
    if name is None:
        return None, scoring
    protocol = get(name)
    columns = ()
    if protocol.image_columns and images is not None:
        from .read import to_arrow
        columns = to_arrow(images, "images", limits)[0].column_names
    return protocol, protocol.options(scoring, columns)


def finish(protocol, report, rescore):
    """The report with the protocol's table in its summary (``"protocol"``), scoring
    the protocol's further passes with ``rescore(changed options)`` (a Report) first;
    count-only predictions have no localisation to score again."""
    if protocol is None:
        return report
    passes = {} if report.state.count_only else \
        {name: rescore(changes).summary for name, changes in protocol.passes.items()}
    report.summary["protocol"] = {"name": protocol.name,
                                  "results": protocol.results(report.summary, passes,
                                                              report.state)}
    return report
