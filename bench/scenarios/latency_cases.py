"""The pytest-benchmark module behind ``bench.scenarios.latency.run_cases`` (not part of the test suite).

``run_cases`` parametrizes ``timing_case`` with case ids and provides ``timing_target``, the
prepared zero-argument call; pytest-benchmark calibrates, warms up and times it.
"""


def test_timing(benchmark, timing_case, timing_target):
    benchmark.extra_info["case"] = timing_case
    benchmark(timing_target)
