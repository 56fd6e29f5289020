"""Bench stage: accuracy, size, memory and latency of every checkpoint and artifact of a run.

    edgedistill bench --run runs/hate-speech            this machine, every artifact x runtime
    edgedistill bench --run runs/hate-speech --merge gpu-bench.json    fold in another machine

Main path: ``bench.launchers.process.run_bench`` plans one job per artifact x runtime x device x precision
x threads (``bench.plan``), measures each in its own subprocess (``bench.launchers.worker``: load time,
accuracy on the test split, peak RSS, and latency through pytest-benchmark in
``bench.scenarios.latency``), turns the results into flat rows (``bench.schema``), adds the ratios against
the teacher (``bench.reporting.derive``) and writes ``results/<run>/bench.json``, ``bench.csv`` and
``report.md`` (``bench.reporting.report``). ``bench.bundles.write`` writes a portable, hash-verified folder that
``edgedistill bench --bundle`` measures on another machine with the same loop and only the slim
install; ``bench.launchers.gpu`` holds the script for a CUDA machine (it reads a bundle too).

Rooms: the stage's own config, plan and row schema at the top; ``scenarios`` (what one job
measures), ``launchers`` (where jobs run: a process each, a Dask fleet, a GPU under a deadline),
``reporting`` (rows -> ratios, report.md, run-to-run agreement) and ``bundles`` (the portable
folder). Backends are not a bench room: every one implements ``edgedistill.runtime``'s interface.
"""
