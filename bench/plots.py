"""PNG plots of the scaling curves from their JSON figures.

    python -m bench.plots [bench/out/scaling.json] [--out bench/out] [--docs]

Writes scaling_points.png (seconds against GT points per image) and
scaling_images.png (seconds against number of images) to --out, and with --docs also
to docs/img/ for the README.  Needs matplotlib (the project's "bench" extra).
"""
import argparse
import json
import os
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench", "out")
DOCS = os.path.join(ROOT, "docs", "img")
FILES = {"points_per_image": "scaling_points.png", "images": "scaling_images.png"}
STYLE = {  # tool: (label, colour, marker)
    "pointscore": ("pointscore", "#d62728", "o"),
    "faster_coco_eval": ("faster-coco-eval", "#1f77b4", "s"),
    "pycocotools": ("pycocotools", "#9467bd", "^"),
    "nwpu": ("NWPU-style eval (Kuhn)", "#2ca02c", "D"),
    "kdtree": ("KD-tree + greedy loop", "#ff7f0e", "v"),
}


def plot(figures, out_dir=OUT, docs=False):
    """Write the PNGs; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    written = []
    machine = figures.get("machine", "")
    for name, curve in figures["curves"].items():
        fig, ax = plt.subplots(figsize=(7.0, 4.6), dpi=120)
        for tool, points in curve["series"].items():
            if not points:
                continue
            label, colour, marker = STYLE.get(tool, (tool, None, "o"))
            ax.plot([p["x"] for p in points], [p["seconds"] for p in points], marker=marker, color=colour,
                    label=label, linewidth=2.2 if tool == "pointscore" else 1.4)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(curve["x_label"])
        ax.set_ylabel("seconds (log)")
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=8)
        ax.set_title("10 thresholds 0.01..0.10, normalize=wh; pointscore: full evaluation incl. AP; "
                     "peers: their own job (bench/README.md)", fontsize=8)
        if machine:
            fig.text(0.01, 0.005, machine, fontsize=6, color="0.4")
        fig.tight_layout(rect=(0, 0.02, 1, 1))
        path = os.path.join(out_dir, FILES.get(name, f"scaling_{name}.png"))
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
        if docs:
            os.makedirs(DOCS, exist_ok=True)
            target = os.path.join(DOCS, os.path.basename(path))
            shutil.copyfile(path, target)
            written.append(target)
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.plots", description=__doc__.split("\n")[0])
    parser.add_argument("figures", nargs="?", default=os.path.join(OUT, "scaling.json"))
    parser.add_argument("--out", default=OUT)
    parser.add_argument("--docs", action="store_true", help="also write docs/img/scaling_*.png")
    args = parser.parse_args(argv)
    with open(args.figures) as source:
        figures = json.load(source)
    for path in plot(figures, args.out, args.docs):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
