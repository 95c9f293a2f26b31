"""Benchmarks and external reference evaluators for pointscore (python -m bench)."""
