"""The vocabulary of the options: their choices, defaults and caps. A module without
imports, so that the command line's parser (and ``--help``) loads nothing heavy."""

DEFAULT_THRESHOLDS = tuple(round(0.01 * i, 10) for i in range(1, 11))
MATCH = ("greedy", "nearest", "hungarian", "kuhn")
# 'knn': coordinates stay as they are; each gt gets its own scale (docs/scaled.md).
NORMALIZE = ("none", "wh", "diag", "knn")
DEVICES = ("auto", "cpu", "gpu")
BREAKDOWNS = ("count", "density")
# Upper edges of right-closed bins; the first bin is [0, 0]: images with nothing to count.
DEFAULT_BINS = (0.0, 100.0, 500.0, 5000.0)  # NWPU-Crowd's scene levels S0-S4
DEFAULT_KNN_K = 3
MAX_GAME_LEVEL = 3
MAX_THRESHOLDS = 10_000
DEFAULT_SHARD_POINTS = 2_000_000
CONVERT_FORMATS = ("nwpu-txt", "nwpu-counts", "nwpu-json", "mat", "jhu", "coco", "csv")
