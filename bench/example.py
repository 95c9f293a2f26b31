"""Write a small crowd-like example dataset as Parquet: gt, pred and images tables.

    python -m bench.example DIR [--preset small|core] [--seed N]

Then: pointscore evaluate --gt DIR/gt.parquet --pred DIR/pred.parquet \
          --images DIR/images.parquet --normalize wh
"""
import argparse
import os

import pyarrow as pa
import pyarrow.parquet as pq

from bench import data


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.example", description=__doc__.split("\n")[0])
    parser.add_argument("directory")
    parser.add_argument("--preset", choices=sorted(data.PRESETS), default="core")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.makedirs(args.directory, exist_ok=True)
    tables = data.crowd(**data.PRESETS[args.preset], seed=args.seed)
    for name, table in zip(("gt", "pred", "images"), tables):
        path = os.path.join(args.directory, f"{name}.parquet")
        pq.write_table(pa.table(table), path)
        print(f"wrote {path} ({len(next(iter(table.values())))} rows)")


if __name__ == "__main__":
    main()
