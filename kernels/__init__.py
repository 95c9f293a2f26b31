"""pointscore's compute: numpy reference rules, Numba CPU kernels, Numba CUDA kernels."""
