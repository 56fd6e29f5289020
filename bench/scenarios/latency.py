"""Latency through pytest-benchmark: its calibration, warm-up, rounds and timer, not ours.

``run_cases`` runs ``pytest.main`` on ``bench/scenarios/latency_cases.py`` inside the calling process (the
loaded model stays in memory), one parametrized test per ``Case``, and reads the statistics
back from ``--benchmark-json``. Each case's target is a zero-argument callable built by the
caller; the caller decides what one call is (e.g. one forward of a pre-tokenized batch, with a
device synchronisation for GPUs).

Per case pytest-benchmark calibrates the iterations per round (1 for anything slower than a
few microseconds, so one round = one call), warms up for ``warmup_iterations`` calls (at most
``max_time`` seconds), then runs ``max(min_rounds, max_time / round time)`` rounds. p50, mean,
min and stddev are pytest-benchmark's; p90 and p99 are read off its raw round times.

Imports only the standard library, pytest (with pytest-benchmark) and ``edgedistill.scenarios`` (names only),
so the GPU script can use it as it is.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from edgedistill.scenarios import LATENCY, TEXT_LATENCY, TEXT_THROUGHPUT, THROUGHPUT, TOKENIZE

CASES_FILE = Path(__file__).with_name("latency_cases.py")


class TimingError(RuntimeError):
    """A timing case that failed or produced no statistics."""


@dataclass
class Case:
    """One timed scenario: ``batch_size`` texts per call at ``seq_len`` (natural, a count, or
    bucketed: one call scores ``texts`` texts in length-bucketed batches of at most ``batch_size``)."""

    scenario: str           # edgedistill.scenarios: text-latency | text-throughput | latency | throughput | tokenize
    batch_size: int
    seq_len: str            # "natural" or "16", "64", ... or "bucketed"
    options: str = ""       # e.g. "cuda-graphs"; part of the id
    precision: str = ""     # when one process times several precisions (GPU script)
    repeat: int = 0         # 0, 1, ...: the same case timed again later for the spread
    min_rounds: int = 100
    texts: int = 0          # texts per call when that is not batch_size (a bucketed pass over a split)

    @property
    def id(self) -> str:
        parts = [self.precision, self.scenario, f"b{self.batch_size}", str(self.seq_len), self.options]
        return "-".join(p for p in parts if p) + f"-r{self.repeat}"


def build_cases(seq_lens, batch_size: int, throughput_seq_lens, min_rounds: int, throughput_min_rounds: int,
                repeat: int = 1, options: str = "", precision: str = "", text: bool = False) -> list[Case]:
    """The timed scenarios of one loaded model: batch 1 at each of ``seq_lens``, then a
    ``batch_size`` batch at each of ``throughput_seq_lens``; all of them ``repeat`` times.
    ``text``: also text -> label at natural length (batch 1 and batched, ``edgedistill.scenarios``)
    and the tokenizer alone on the batch-1 texts; a text's own length is its length, so the text
    scenarios exist at natural length only."""
    one = []
    if text and "natural" in [str(s) for s in seq_lens]:
        one += [Case(TEXT_LATENCY, 1, "natural", options, precision, min_rounds=min_rounds),
                Case(TOKENIZE, 1, "natural", options, precision, min_rounds=min_rounds)]
    one += [Case(LATENCY, 1, str(s), options, precision, min_rounds=min_rounds) for s in seq_lens]
    if text and "natural" in [str(s) for s in throughput_seq_lens]:
        one.append(Case(TEXT_THROUGHPUT, batch_size, "natural", options, precision,
                        min_rounds=throughput_min_rounds))
    one += [Case(THROUGHPUT, batch_size, str(s), options, precision, min_rounds=throughput_min_rounds)
            for s in throughput_seq_lens]
    return [Case(c.scenario, c.batch_size, c.seq_len, c.options, c.precision, repeat=r, min_rounds=c.min_rounds)
            for r in range(repeat) for c in one]


@dataclass
class TimingSettings:
    max_time: float = 2.0
    warmup_iterations: int = 20
    disable_gc: bool = True


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), q in [0, 100]."""
    if not sorted_values:
        raise ValueError("no values")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(stats: dict, batch_size: int) -> dict:
    """pytest-benchmark stats (seconds per call, with raw ``data``) -> the row's speed columns."""
    data = sorted(stats["data"])
    ms = 1000.0
    return {"latency_mean_ms": stats["mean"] * ms, "latency_p50_ms": stats["median"] * ms,
            "latency_p90_ms": percentile(data, 90) * ms, "latency_p99_ms": percentile(data, 99) * ms,
            "latency_min_ms": stats["min"] * ms, "latency_stddev_ms": stats["stddev"] * ms,
            "rounds": int(stats["rounds"]), "iterations": int(stats["iterations"]),
            "throughput_per_s": batch_size / stats["mean"] if stats["mean"] > 0 else None}


class _CasesPlugin:
    """Feeds the cases to bench/scenarios/latency_cases.py and collects failures."""

    def __init__(self, cases: list[Case], make_target: Callable[[Case], Callable[[], object]]):
        self.cases = {c.id: c for c in cases}
        self.make_target = make_target
        self.failures: dict[str, str] = {}

    def pytest_generate_tests(self, metafunc):
        if "timing_case" in metafunc.fixturenames:
            metafunc.parametrize("timing_case", [
                pytest.param(cid, id=cid, marks=pytest.mark.benchmark(min_rounds=c.min_rounds, group=c.scenario))
                for cid, c in self.cases.items()])

    def pytest_runtest_logreport(self, report):
        if report.failed:
            self.failures[report.nodeid.rsplit("[", 1)[-1].rstrip("]")] = str(report.longrepr)[-2000:]

    @pytest.fixture
    def timing_target(self, timing_case):
        """The case's zero-argument call; building it (tokenizing, capturing graphs) is not timed."""
        return self.make_target(self.cases[timing_case])

    def pytest_benchmark_generate_machine_info(self, config):
        return {}   # the bench records its own hardware fingerprint; skip py-cpuinfo's slow probe

    def pytest_benchmark_generate_commit_info(self, config):
        return {}


def run_cases_partial(cases: list[Case], make_target: Callable[[Case], Callable[[], object]],
                      settings: TimingSettings, workdir: str | Path,
                      verbose: bool = False) -> tuple[dict[str, dict], dict[str, str]]:
    """Time every case with pytest-benchmark; returns ({case id: summarize(...) + raw data},
    {case id: why it has no statistics})."""
    if not cases:
        return {}, {}
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    json_path = workdir / "pytest-benchmark.json"
    json_path.unlink(missing_ok=True)
    ini = workdir / "pytest.ini"
    # An empty ini of our own: the project's pytest options (e.g. --benchmark-disable) must not apply.
    ini.write_text("[pytest]\n")
    plugin = _CasesPlugin(cases, make_target)
    args = [str(CASES_FILE), "-c", str(ini), "--rootdir", str(workdir), "-p", "no:cacheprovider",
            "-q" if verbose else "-qq", "--no-header", "-W", "ignore::DeprecationWarning",
            "--benchmark-enable", f"--benchmark-json={json_path}", f"--benchmark-storage={workdir / 'storage'}",
            f"--benchmark-max-time={settings.max_time}", "--benchmark-timer=time.perf_counter",
            "--benchmark-sort=name"]
    if settings.warmup_iterations > 0:
        args += ["--benchmark-warmup=on", f"--benchmark-warmup-iterations={settings.warmup_iterations}"]
    else:
        args += ["--benchmark-warmup=off"]
    if settings.disable_gc:
        args.append("--benchmark-disable-gc")
    rc = pytest.main(args, plugins=[plugin])
    results = {}
    if json_path.is_file():
        for b in json.loads(json_path.read_text()).get("benchmarks", []):
            cid = b["params"]["timing_case"]
            case = plugin.cases[cid]
            results[cid] = {**summarize(b["stats"], case.texts or case.batch_size), "data_s": b["stats"]["data"],
                            "case": asdict(case)}
    failures = {cid: plugin.failures.get(cid, f"no statistics (pytest exit code {int(rc)})")
                for cid in plugin.cases if cid not in results}
    return results, failures


def run_cases(cases: list[Case], make_target: Callable[[Case], Callable[[], object]], settings: TimingSettings,
              workdir: str | Path, verbose: bool = False) -> dict[str, dict]:
    """Like ``run_cases_partial``, but any case without statistics is an error."""
    results, failures = run_cases_partial(cases, make_target, settings, workdir, verbose)
    if failures:
        detail = "; ".join(f"{cid}: {why}" for cid, why in list(failures.items())[:3])
        raise TimingError(f"pytest-benchmark produced no statistics for {len(failures)} case(s): {detail}")
    return results


def timing_settings(cfg) -> TimingSettings:
    return TimingSettings(max_time=cfg.max_time, warmup_iterations=cfg.warmup_iterations, disable_gc=cfg.disable_gc)
