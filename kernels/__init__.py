"""pointscore.kernels: the compute. Numba CPU kernels (grid, candidates, rules,
hungarian, knn_scales, ap, exact, resample) and their CUDA twins (cuda)."""
