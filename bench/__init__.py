"""Bench stage: accuracy, size, memory and latency of every checkpoint and artifact of a run.

    edgedistill bench --run runs/hate-speech            this machine, every artifact x runtime
    edgedistill bench --run runs/hate-speech --merge gpu-bench.json    fold in another machine

Main path: ``bench.runner.run_bench`` plans one job per artifact x runtime x device x precision
x threads (``bench.plan``), measures each in its own subprocess (``bench.worker``: load time,
accuracy on the test split, peak RSS, and latency through pytest-benchmark in
``bench.timing``), turns the results into flat rows (``bench.schema``), adds the ratios against
the teacher (``bench.derive``) and writes ``results/<run>/bench.json``, ``bench.csv`` and
``report.md`` (``bench.report``). ``bench.bundle`` writes a portable, hash-verified folder that
``edgedistill bench --bundle`` measures on another machine with the same loop and only the slim
install; ``bench.gpu`` holds the script for a CUDA machine (it reads a bundle too).
"""
