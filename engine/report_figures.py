"""The HTML report's figures and per-image sections, drawn with matplotlib."""
import html

import numpy as np

from pointscore.kernels.ap import RECALL_POINTS

from .html_parts import as_float, chosen_threshold, color, inline_png, middle, note, table
from .terminal import fmt as _fmt


def pr_section(mpl, reports, threshold=None):
    """The PR curves: one panel per submission with scores (the macro curve per d);
    with several classes, also one panel per class at one threshold (``threshold``,
    default the middle one)."""
    head = "<h2 id=pr>Precision-recall curves</h2>"
    scored = {name: report for name, report in reports.items() if report.state.has_scores}
    if not scored:
        return head + "\n" + note("No submission has scores: AP and PR curves are undefined.")
    unscored = [name for name in reports if name not in scored]
    # (n_classes, n_thresholds, 101) per submission, computed once for both figures
    curves = {name: report.state.interpolated_precision() for name, report in scored.items()}
    fig, axes = mpl.figure(len(scored), sharex=True, sharey=True)
    for ax, (name, report) in zip(axes, scored.items()):
        pr_panel(mpl, ax, name, report, curves[name])
    return head + "\n" + (note(f"Without scores, so without curves: {', '.join(unscored)}.")
                          + "\n" if unscored else "") + inline_png(
        fig, "precision-recall curves",
        "COCO interpolated precision at the 101 recall points, one line per threshold d. "
        "With several classes the curve is the macro one, the mean over classes with "
        "ground truth, so its mean is the AP in the legend.") + class_pr(
        mpl, reports, curves, threshold)


def pr_panel(mpl, ax, name, report, curves=None):
    ax.set_title(name)
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    state = report.state
    if not (state.gt_points > 0).any():
        ax.text(0.5, 0.5, "no ground truth", ha="center", va="center",
                transform=ax.transAxes)
        return
    if curves is None:
        curves = state.interpolated_precision()
    curves = curves[state.gt_points > 0].mean(axis=0)
    ap = report.summary["macro"]["ap"]
    cmap = mpl.colormaps["viridis"]
    n_t = len(curves)
    for t, d in enumerate(state.thresholds):
        ax.plot(RECALL_POINTS, curves[t], color=cmap(t / max(n_t - 1, 1)),
                label=f"d={d:g} AP {_fmt(ap[t], 3)}")
    ax.legend(fontsize="x-small", loc="lower left")


MAX_CLASS_PANELS = 12


def class_pr(mpl, reports, curves, threshold=None):
    """Per-class PR curves at one threshold, when a submission has several classes: one
    panel per class (the MAX_CLASS_PANELS with the most ground truth, in class order),
    one line per submission in its colour; '' otherwise."""
    if not any(len(reports[name].state.classes) > 1 for name in curves):
        return ""
    gt = {}  # class -> its ground-truth points (the most any submission's state counts)
    for name in curves:
        state = reports[name].state
        for c, label in enumerate(state.classes):
            gt[label] = max(gt.get(label, 0), int(state.gt_points[c]))
    classes = [label for label in gt if gt[label] > 0]
    drawn = sorted(sorted(classes, key=lambda label: -gt[label])[:MAX_CLASS_PANELS],
                   key=classes.index)
    first = reports[next(iter(curves))].state.thresholds
    at = f" at d={float(first[chosen_threshold(first, threshold)]):g}"
    head = f"\n<h3 id=pr-classes>Per class{at}</h3>\n"
    if not drawn:
        return head + note("No class has ground truth: no per-class curves.")
    fig, axes = mpl.figure(len(drawn), panel=(3.3, 2.9), columns=4, sharex=True, sharey=True)
    for ax, label in zip(axes, drawn):
        ax.set_title(f"class {label}", fontsize="medium")
        ax.set(xlim=(0, 1), ylim=(0, 1.02))
        for i, name in enumerate(reports):
            state = reports[name].state
            if name not in curves or label not in state.classes:
                continue
            curve = curves[name][state.classes.index(label),
                                 chosen_threshold(state.thresholds, threshold)]
            if np.isnan(curve).all():  # no ground truth of this class in its images
                continue
            ax.plot(RECALL_POINTS, curve, color=color(i),
                    label=f"{name} AP {_fmt(float(curve.mean()), 3)}")
        if ax.lines:
            ax.legend(fontsize="x-small", loc="lower left")
    for ax in axes[-min(len(axes), 4):]:
        ax.set_xlabel("recall")
    for ax in axes[::4]:
        ax.set_ylabel("precision")
    left = len(classes) - len(drawn)
    return head + (note(f"{len(drawn)} of {len(classes)} classes with ground truth drawn "
                        f"(those with the most ground-truth points); {left} left out.") + "\n"
                   if left else "") + inline_png(
        fig, f"precision-recall curves per class{at}",
        f"COCO interpolated precision at the 101 recall points per class{at} (the threshold "
        "the overlays draw), one line per submission; its mean is the class's AP in the "
        "legend.")


def rates_section(mpl, reports):
    head = "<h2 id=rates>Precision, recall and F1 against d</h2>\n"
    # Count-only predictions have no points to match: no lines of theirs.
    located = [(i, name, report) for i, (name, report) in enumerate(reports.items())
               if not report.state.count_only]
    if not located:
        return head + note("Count-only predictions: precision, recall and F1 are undefined.")
    fig, axes = mpl.figure(3, sharex=True)
    for ax, key in zip(axes, ("precision", "recall", "f1")):
        for i, name, report in located:
            s = report.summary
            ax.plot(s["config"]["thresholds"], [as_float(v) for v in s["micro"][key]],
                    marker="o", markersize=3, color=color(i), label=name)
        ax.set(title=f"{'F1' if key == 'f1' else key} (micro)", xlabel="d")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    return head + inline_png(
        fig, "precision, recall and F1 against d",
        "Micro precision, recall and F1 at each threshold d (pooled over images and classes).")


def image_totals(report, color):
    """Per image, summed over classes: ids, true and predicted counts and TP/FP/FN at the
    middle threshold, ascending by id, and the plot colour."""
    thresholds = report.summary["config"]["thresholds"]
    images = report.images
    pooled = {"true": images.column("gt_count").to_numpy(),
              "pred": images.column("pred_count").to_numpy(),
              "image_id": images.column("image_id").to_pylist(),
              "d": thresholds[middle(thresholds)], "color": color}
    # Count-only predictions have counts and no matches.
    for key in ("tp", "fp", "fn"):
        if key in images.column_names:
            pooled[key] = images.column(key).to_numpy()
    return pooled


def per_image_sections(mpl, pooled, worst):
    """Counts, density and worst images for the submissions with images; a note, said
    once, for each without."""
    notes = [note(f"{name}: no images, so no per-image figures.")
             for name, p in pooled.items() if not len(p["true"])]
    shown = {name: p for name, p in pooled.items() if len(p["true"])}
    if not shown:
        return "\n".join(["<h2 id=per-image>Per-image figures</h2>", *notes])
    return "\n".join([counts_section(mpl, shown, notes), density_section(mpl, shown),
                      worst_section(shown, worst)])


def counts_section(mpl, pooled, notes):
    fig, axes = mpl.figure(len(pooled), sharex=True, sharey=True)
    top = max(max(p["true"].max(), p["pred"].max()) for p in pooled.values()) or 1
    for ax, (name, p) in zip(axes, pooled.items()):
        ax.plot([0, top], [0, top], color="0.6", linestyle="--", linewidth=1)
        ax.scatter(p["true"], p["pred"], s=10, alpha=0.6, color=p["color"])
        ax.set(title=name, xlabel="true count", ylabel="predicted count")
        ax.set_aspect("equal")
    return "\n".join(["<h2 id=counts>Predicted against true counts</h2>", *notes, inline_png(
        fig, "predicted against true counts",
        "One point per image (counts summed over classes; predictions kept at the "
        "operating point); dashed: predicted = true.")])


def density_section(mpl, pooled):
    fig, (ax,) = mpl.figure(1, panel=(9, 4.5))
    for name, p in pooled.items():
        error = np.abs(p["pred"] - p["true"])
        ax.scatter(p["true"], error, s=8, alpha=0.25, color=p["color"])
        ax.plot(*binned_means(p["true"], error), marker="o", color=p["color"], label=name)
    if max(p["true"].max() for p in pooled.values()) > 100:
        ax.set_xscale("symlog", linthresh=1)  # heavy-tailed counts; 0 stays on the axis
    ax.set(xlabel="true count per image (density)", ylabel="|predicted - true|")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return "<h2 id=density>Count error against density</h2>\n" + inline_png(
        fig, "absolute count error against density",
        "Points: images; lines: mean error in bins of about equal numbers of images. The "
        "report does not know image sizes, so density is the true count per image, not "
        "points per pixel.")


def binned_means(x, y, most=10, least_images=5):
    """Mean x and mean y in quantile bins of x: up to ``most`` bins, of about
    ``least_images`` images or more."""
    bins = max(1, min(most, x.size // least_images))
    edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)))
    which = np.searchsorted(edges[1:-1], x, side="right")
    used = np.unique(which)
    return (np.array([x[which == b].mean() for b in used]),
            np.array([y[which == b].mean() for b in used]))


def worst_section(pooled, worst):
    parts = ["<h2 id=worst>Worst images</h2>",
             '<p class="muted">The images with the largest |predicted - true| count (summed '
             "over classes), largest first, with their matches at the middle threshold.</p>"]
    for name, p in pooled.items():
        error = p["pred"] - p["true"]
        order = worst_order(p["true"], p["pred"], worst)
        rows = [(str(p["image_id"][i]), str(p["true"][i]), f"{p['pred'][i]:g}",
                 f"{error[i]:+g}", *(str(p[k][i]) if k in p else "-" for k in ("tp", "fp", "fn")))
                for i in order]
        d = f"{p['d']:g}"
        parts += [f"<h3>{html.escape(name)}</h3>",
                  table(("image", "true", "predicted", "error", f"TP@{d}", f"FP@{d}",
                          f"FN@{d}"), rows)]
    return "\n".join(parts)


def worst_order(true, pred, worst):
    """The rows of the ``worst`` images with the largest |pred - true|, largest first;
    ties in ascending id (the rows' order). The worst-images tables and the overlays
    (pointscore.overlays) show these."""
    return np.argsort(-np.abs(np.asarray(pred) - np.asarray(true)), kind="stable")[:worst]
