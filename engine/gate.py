"""The regression gate: ``--fail-if "map drop > 0.005 at p < 0.05"``.

An expression is one or more conditions joined by ``or``; the gate fails when any
holds. A condition is ``METRIC drop > X`` for a metric where higher is better (``map``,
``f1@D``: micro F1 at threshold D) or ``METRIC rise > X`` for an error (``mae``,
``rmse``), X an absolute difference of the run's value from the baseline's, optionally
followed by ``at p < P``: the paired bootstrap over images (pointscore.bootstrap, the
one ``compare`` uses: 1000 resamples, seed 0) must also find the baseline better with
a one-sided p-value below P. A metric undefined in either run (mAP without scores)
never holds.
"""
import math
import re
from dataclasses import dataclass

from .errors import InputError, option, shown
from .ranking import LOWER_IS_BETTER

N_RESAMPLES, SEED = 1000, 0
_CONDITION = re.compile(
    r"^\s*(?P<metric>map|mae|rmse|f1@(?P<d>[0-9.eE+-]+))\s+(?P<word>drop|rise)\s*>\s*"
    r"(?P<by>[0-9.eE+-]+)\s*(?:at\s+p\s*<\s*(?P<p>[0-9.eE+-]+))?\s*$")


@dataclass
class Condition:
    metric: str          # map, mae, rmse or f1
    threshold: float     # for f1: its d
    by: float
    p: float             # None: no test


@dataclass
class Verdict:
    failed: bool
    lines: list          # one per condition: what changed, and whether it held


def parse(text, thresholds):
    """The conditions of an expression, checked against the run's thresholds."""
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"{option('fail_if')} needs a condition such as 'map drop > 0.005 "
                         "at p < 0.05'")
    conditions = []
    for part in re.split(r"\s+or\s+", text.strip()):
        match = _CONDITION.match(part)
        if not match:
            raise InputError(f"{option('fail_if')}: cannot read {shown(part)}: write METRIC "
                             "drop|rise > X [at p < P], METRIC one of map, mae, rmse, f1@D")
        metric = "f1" if match["d"] else match["metric"]
        lower = metric in LOWER_IS_BETTER
        if (match["word"] == "rise") != lower:
            kind = "an error, lower when better" if lower else "higher when better"
            raise InputError(f"{option('fail_if')}: {shown(part)}: {match['metric']} is "
                             f"{kind}: write '{match['metric']} {'rise' if lower else 'drop'}'")
        try:
            by, p = float(match["by"]), None if match["p"] is None else float(match["p"])
            d = float(match["d"]) if match["d"] else None
        except ValueError:
            raise InputError(f"{option('fail_if')}: {shown(part)}: not a number") from None
        if not (math.isfinite(by) and by >= 0) or (p is not None and not 0 < p <= 1):
            raise InputError(f"{option('fail_if')}: {shown(part)}: X must be a number >= 0 "
                             "and P between 0 and 1")
        if d is not None and d not in thresholds:
            raise InputError(f"{option('fail_if')}: {shown(part)}: {d:g} is not one of the "
                             f"thresholds ({', '.join(f'{t:g}' for t in thresholds)})")
        conditions.append(Condition(metric, d, by, p))
    return conditions


def _value(summary, condition, thresholds):
    if condition.metric == "map":
        return summary["map"]
    if condition.metric == "f1":
        return summary["micro"]["f1"][list(thresholds).index(condition.threshold)]
    return summary["counting"][condition.metric]


def judge(conditions, report, baseline, run_id):
    """Whether the run (a Report) regressed from the baseline (history.StoredRun)."""
    from . import bootstrap
    thresholds = list(report.summary["config"]["thresholds"])
    old_summary = baseline.summary
    tested = any(c.p is not None for c in conditions)
    p_values = bootstrap.paired(baseline, report, N_RESAMPLES, SEED)["p"] if tested else {}
    failed, lines = False, []
    for c in conditions:
        new, old = _value(report.summary, c, thresholds), _value(old_summary, c, thresholds)
        name = "mAP" if c.metric == "map" else (f"F1@{c.threshold:g}" if c.metric == "f1"
                                                 else c.metric.upper())
        if new is None or old is None:
            lines.append(f"{name} undefined, not gated")
            continue
        change = new - old if c.metric in LOWER_IS_BETTER else old - new
        word = "rose" if c.metric in LOWER_IS_BETTER else "dropped"
        p = None
        if c.p is not None:
            p = p_values[c.metric] if c.metric != "f1" else \
                p_values["f1"][thresholds.index(c.threshold)]
        holds = change > c.by and (c.p is None or (p is not None and p < c.p))
        failed |= holds
        tail = "" if c.p is None else f" (p undefined, {c.p:g})" if p is None else \
            f" (p = {p:.4f}{' <' if p < c.p else ', not <'} {c.p:g})"
        lines.append(f"{name} {word} by {change:.4g} ({old:.4f} -> {new:.4f}) against run "
                     f"{run_id}{tail}: {'regression' if holds else 'within the gate'} "
                     f"(> {c.by:g})")
    return Verdict(failed, lines)
