"""Benchmarks on a CUDA machine whose Python stack differs from this one (see bench/launchers/gpu/README.md).

``pack.py`` (here) packs the run's checkpoints small enough to travel; ``run.py`` (there)
measures them and writes a bench.json in the same schema, merged back with
``edgedistill bench --merge``.
"""
