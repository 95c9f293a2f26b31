"""``compare --csv``: the ranking as one CSV table, for a leaderboard site to show as it
is: ranked submissions in order, then the invalid ones with their messages."""
import csv
import io

from .ranking import rank_key

METRICS = ("map", "mae", "rmse")


def ranking_csv(comparison, thresholds):
    """The comparison's JSON-ready summary (pointscore.compare) as CSV text.

    Columns: rank, tied, name, status, then map, mae, rmse and F1 at the ranking
    threshold (else the middle one) each with its interval (``_low``, ``_high``), the
    p-value against the next submission on the ranking metric (``p_vs_next``), and the
    message of an invalid submission. Empty cells where a value is null; ``tied`` is
    true or false.
    """
    cfg = comparison["config"]
    metric, t = rank_key(cfg["rank_by"], thresholds)
    f1_at = t if metric == "f1" else (len(thresholds) - 1) // 2
    f1 = f"f1@{thresholds[f1_at]:g}"
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["rank", "tied", "name", "status",
                     *(f"{m}{part}" for m in (*METRICS, f1) for part in ("", "_low", "_high")),
                     "p_vs_next", "message"])
    submissions = comparison["submissions"]
    for row in comparison["ranking"]:
        intervals = submissions[row["name"]]["intervals"] or {}
        values = [(row[m], intervals.get(m)) for m in METRICS]
        values.append((row["f1"][f1_at], intervals["f1"][f1_at] if intervals else None))
        p = row["p_beats_next"]
        writer.writerow([row["rank"], str(row["tied"]).lower(), row["name"], "ok",
                         *(cell for value, interval in values
                           for cell in (value, *(interval or (None, None)))),
                         None if p is None else (p["f1"][t] if metric == "f1" else p[metric]),
                         None])
    for name, entry in submissions.items():
        if entry["status"] == "invalid":
            writer.writerow([None, None, name, "invalid", *[None] * 12, None,
                             entry["message"]])
    return out.getvalue()
