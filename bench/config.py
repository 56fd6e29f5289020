"""The bench stage's config: the recipe's ``bench:`` section, then command-line overrides.

    bench:
      threads: [all, 1]          # all = every physical core; add 1 for single-thread numbers
      seq_lens: [natural, 16, 64, 128]
      batch_size: 32             # throughput scenario
      repeat: 2                  # run the timing pass twice, report the p50 spread
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from edgedistill.configbase import ConfigError, deep_merge, dump, from_dict

RUNTIMES = ("pytorch", "onnxruntime", "openvino", "numpy")
DEVICES = ("cpu", "cuda", "gpu")
FIXED_SEQ_LENS = (16, 64, 128)

# What `quick: true` changes, unless set explicitly: seconds instead of minutes (tests, smoke runs).
QUICK = dict(min_rounds=5, throughput_min_rounds=3, max_time=0.05, warmup_iterations=2, probe_s=0.01,
             paired_blocks=4, paired_calls=2,
             seq_lens=["natural", 16], natural_texts=8, batch_size=4, throughput_batches=2,
             max_test=32, include_bf16=False)


@dataclass
class BenchConfig:
    # What to measure (None = everything found in the run folder / on this machine).
    models: list[str] | None = None          # edgedistill.methods.ORDER names
    variants: list[str] | None = None        # pytorch, onnx-fp32, openvino-int8, ...-trim
    runtimes: list[Literal["pytorch", "onnxruntime", "openvino", "numpy"]] | None = None
    devices: list[Literal["cpu", "cuda", "gpu"]] | None = None
    include_bf16: bool = True                # PyTorch / OpenVINO BF16 where the CPU has bf16 instructions
    reference: bool = True                   # always measure teacher PyTorch FP32 (the speed-up baseline)

    # Scenarios: latency at batch 1 per sequence length, throughput at batch_size.
    threads: list[int | str] = field(default_factory=lambda: ["all"])   # "all" = physical cores
    seq_lens: list[int | str] = field(default_factory=lambda: ["natural", 16, 64, 128])
    natural_texts: int = 64                  # test texts cycled through by the natural-length scenario
    batch_size: int = 32
    throughput_seq_lens: list[int | str] = field(default_factory=lambda: ["natural"])
    throughput_batches: int = 8              # distinct batches of test texts cycled through

    # pytest-benchmark: it calibrates, warms up and picks rounds = max(min_rounds, max_time / round).
    min_rounds: int = 200
    throughput_min_rounds: int = 20
    max_time: float = 2.0                    # seconds per scenario
    warmup_iterations: int = 20
    disable_gc: bool = True
    repeat: int = 1                          # 2+: the timing pass again, p50 spread in report.md
    probe_s: float = 0.3                     # memory-bandwidth probe before and after each job (0: off)
    # Contention (edgedistill/contention.py): a row is "disturbed" when, while it was timed, other
    # processes used more than this share of the machine, or the hypervisor stole more than this.
    disturbed_other_cpu_pct: float = 10.0
    disturbed_steal_pct: float = 5.0
    # Paired headline ratios (bench/scenarios/paired.py): every goal's candidates (the fastest `paired_top`
    # within 1% and within 3% of the teacher's macro-F1, the smallest within 1%, each model's fastest within 3%;
    # edgedistill.goals.candidates), each timed against teacher PyTorch FP32 and teacher ORT dynamic INT8
    # in one process, ABBA blocks of `paired_calls` calls (paired_top 0 = off).
    paired_top: int = 3
    paired_blocks: int = 30
    paired_calls: int = 10
    roofline: bool = True                    # this machine's FP32 / INT8 MatMul peak (bench/scenarios/roofline.py)

    # Accuracy: the full test split unless capped.
    max_test: int | None = None
    eval_batch_size: int = 64

    quick: bool = False                      # tiny rounds and caps (tests, smoke runs)
    job_timeout_s: float = 3600.0
    seed: int = 0

    def validate(self) -> list[str]:
        errs = []
        for name in ("natural_texts", "batch_size", "throughput_batches", "min_rounds", "throughput_min_rounds",
                     "repeat", "eval_batch_size"):
            if getattr(self, name) < 1:
                errs.append(f"{name}: {getattr(self, name)} must be >= 1")
        if self.paired_top < 0:
            errs.append(f"paired_top: {self.paired_top} must be >= 0 (0 turns the paired ratios off)")
        if self.paired_blocks < 2 or self.paired_calls < 1:
            errs.append(f"paired_blocks / paired_calls: {self.paired_blocks} / {self.paired_calls} must be >= 2 / >= 1")
        for name in ("disturbed_other_cpu_pct", "disturbed_steal_pct"):
            if not 0 <= getattr(self, name) <= 100:
                errs.append(f"{name}: {getattr(self, name)} must be a percentage in [0, 100]")
        if self.max_time <= 0:
            errs.append(f"max_time: {self.max_time} must be > 0 seconds")
        if self.probe_s < 0:
            errs.append(f"probe_s: {self.probe_s} must be >= 0 seconds (0 turns the bandwidth probe off)")
        if self.warmup_iterations < 0:
            errs.append(f"warmup_iterations: {self.warmup_iterations} must be >= 0")
        if self.max_test is not None and self.max_test < 2:
            errs.append(f"max_test: {self.max_test} must be null (the full test split) or >= 2")
        for t in self.threads:
            if t != "all" and not (isinstance(t, int) and t >= 1):
                errs.append(f"threads: {t!r} is not 'all' (every physical core) or a positive count")
        if not self.threads:
            errs.append("threads: give at least one entry, e.g. [all] or [all, 1]")
        for key in ("seq_lens", "throughput_seq_lens"):
            for s in getattr(self, key):
                if s != "natural" and not (isinstance(s, int) and s >= 4):
                    errs.append(f"{key}: {s!r} is not 'natural' or a token count >= 4 (e.g. 16, 64, 128)")
        if not self.seq_lens and not self.throughput_seq_lens:
            errs.append("seq_lens and throughput_seq_lens are both empty: nothing to time")
        return errs


def load_bench_config(section: dict | None, overrides: dict | None = None) -> BenchConfig:
    """BenchConfig from a recipe's ``bench:`` dict plus overrides (flags / ``--set bench.k=v``)."""
    section = section or {}
    if not isinstance(section, dict):
        raise ConfigError(f"the recipe's bench section must be a mapping of options, got {section!r}")
    data = deep_merge(section, {k: v for k, v in (overrides or {}).items() if v is not None})
    if data.get("quick") is True:
        data = {**QUICK, **data}   # quick fills in small settings; anything set explicitly wins
    return from_dict(BenchConfig, data, where="bench.")


def describe(cfg: BenchConfig) -> str:
    return dump(cfg)


__all__ = ["BenchConfig", "ConfigError", "load_bench_config", "describe", "RUNTIMES", "DEVICES"]
