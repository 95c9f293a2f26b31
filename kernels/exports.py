"""The entry kernels: the Numba functions the engine calls from Python, each with the one
signature it is called with. The build compiles exactly these ahead of time
(kernels.aot) into the extension ``pointscore.kernels._compiled``; their callees are
compiled into it with them. At run time (kernels.jit) each call is checked against the
same signature before it reaches compiled code, which trusts its arguments' types.

Signatures are in Numba's notation: ``i8[::1]`` a C-contiguous 1-d int64 array,
``b1[:, ::1]`` a C-contiguous 2-d bool array, ``f8`` a float64 scalar. Imports nothing,
so reading it costs nothing.
"""

ENTRIES = {
    "ap.precision_at_recall_points_cpu": "u1[:, ::1], i8, i8[::1], i8",
    "candidates._scan_groups": ("f8[::1], f8[::1], f8[::1], f8[::1], i8[::1], f8[::1], "
                                "f8[::1], i8[::1], f8, i8[::1], i8[::1], i8[::1], f8[::1], "
                                "i8[::1]"),
    "exact.add_accumulators": "f8[:, ::1], i8[::1], f8[:, ::1], i8[::1], i8[::1]",
    "exact.add_values": "f8[:, ::1], i8[::1], i8[::1], f8[::1]",
    "exact.running_row_sums": "f8[:, ::1], i8[::1], i8",
    "greedy.piled_groups": ("i8[::1], i8[::1], f8[::1], f8[::1], f8[::1], f8[::1], b1[::1], "
                            "f8, i8[::1], i8[::1], f8[::1], i8[::1], i8[::1], f8[::1]"),
    "hungarian.edge_components": "i8[::1], i8[::1], i8[::1], i8[::1], f8[::1], b1[::1], f8",
    "kuhn.by_gt": "i8[::1], i8[::1], f8[::1]",
    "kuhn.match_groups": ("i8[::1], i8[::1], i8[::1], i8[::1], f8[::1], b1[::1], f8, "
                          "i8[::1], f8[::1], i8"),
    "resample.block_precision": ("i8[:, ::1], i4[::1], i8[::1], i4[::1], i8[::1], i4[::1], "
                                 "i4[::1], i8[::1], i8, i8[:, ::1], i8, i8, "
                                 "f8[:, :, :, ::1]"),
    "rules.match_groups": ("i8[::1], i8[::1], f8[::1], f8[::1], f8[::1], f8[::1], b1[::1], "
                           "f8, i8, f8[::1], f8[::1], i8[::1], i8[::1], f8[::1], i8[::1], "
                           "f8[::1], b1[:, ::1], b1[::1]"),
}


def symbol(entry):
    """The extension's name for an entry: ``rules.match_groups`` -> ``rules__match_groups``."""
    return entry.replace(".", "__")
