"""Spreading independent jobs over a Dask cluster: a local one, or workers on many machines.

    --scheduler local:2                a LocalCluster: 2 worker processes on this machine, 1 thread each
    --scheduler tcp://HOST:8786        workers started by hand:
                                         dask scheduler
                                         dask worker tcp://HOST:8786 --nthreads 1 --resources train=1
                                         dask worker tcp://HOST:8786 --nthreads 1 --resources target=1 --name board-1

A job asks for one unit of a worker resource: ``train`` (one training job per machine; a big
machine may run several workers) or ``target`` (a board that benches, one bench at a time so
timings are not contended). ``run_tasks`` submits jobs with Dask's retries and yields each
outcome as it finishes, with the worker that ran it; a job that fails for good is an outcome
too (named with its worker), so the caller goes on with the others. ``run_here`` gives the same
outcomes in this process, one job after another (an error stops it, as a plain loop would).

Needs the ``cluster`` extra (``pip install '.[cluster]'``); nothing here is imported by a
sequential run.
"""
from __future__ import annotations

import os
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

CONNECT_TIMEOUT_S = 5           # a wrong address fails in seconds, before any work
WORKERS_TIMEOUT_S = 30          # how long to wait for a worker that offers the resource a job needs
RESOURCES = ("train", "target")
START_HINT = ("start a scheduler with `dask scheduler` (it listens on tcp://HOST:8786) and workers with "
              "`dask worker tcp://HOST:8786 --nthreads 1 --resources train=1` (training) or "
              "`--resources target=1 --name NAME` (a bench target); or use --scheduler local:N for N worker "
              "processes on this machine")
SCHEDULER_HELP = ("spread the work over Dask workers: local:N (N worker processes on this machine) or "
                  "tcp://HOST:PORT (a `dask scheduler`; needs the cluster extra)")


class ClusterError(RuntimeError):
    """A scheduler that cannot be used; the message names the address and how to start one."""


@dataclass
class Outcome:
    """One job's end: its value, or the error that ended it for good; and where it ran."""
    name: str
    value: object = None
    error: str | None = None
    worker: dict = field(default_factory=dict)     # {"name", "address", "host"}; empty when run here

    @property
    def ok(self) -> bool:
        return self.error is None

    def where(self) -> str:
        w = self.worker
        return f"worker {w.get('name')} ({w.get('address')})" if w else "this process"


def parse_scheduler(spec: str) -> tuple[str, int | str]:
    """``("local", N)`` or ``("tcp", "tcp://HOST:PORT")``; anything else is an error naming the forms."""
    if m := re.fullmatch(r"local:(\d+)", spec or ""):
        if int(m.group(1)) >= 1:
            return "local", int(m.group(1))
    elif re.fullmatch(r"(tcp|tls)://[^\s:/]+:\d+", spec or ""):
        return "tcp", spec
    raise ClusterError(f"--scheduler {spec!r} is neither local:N (N >= 1 worker processes on this machine) nor "
                       "tcp://HOST:PORT (a running Dask scheduler, e.g. tcp://10.0.0.5:8786)")


def connect(spec: str, resource: str, wait_s: float = WORKERS_TIMEOUT_S):
    """A ``distributed.Client`` for ``spec`` whose cluster has a worker offering ``resource``.

    ``local:N`` starts N worker processes with one thread and one unit of ``resource`` each. A
    task whose worker dies is rescheduled once (``allowed-failures`` 1), then reported failed.
    A scheduler given by address is reached within ``CONNECT_TIMEOUT_S`` seconds or refused."""
    if resource not in RESOURCES:
        raise ValueError(f"resource {resource!r} is not one of {RESOURCES}")
    kind, where = parse_scheduler(spec)
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ClusterError("--scheduler needs Dask: pip install -c constraints.txt '.[cluster]'") from None
    if kind == "local":
        cluster = LocalCluster(n_workers=where, threads_per_worker=1, processes=True, resources={resource: 1},
                               dashboard_address=None, scheduler_kwargs={"allowed_failures": 1})
        client = Client(cluster)
    else:
        try:
            client = Client(where, timeout=f"{CONNECT_TIMEOUT_S}s")
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"no Dask scheduler answers at {where} within {CONNECT_TIMEOUT_S} s ({exc}); "
                               f"{START_HINT}. Nothing was run.") from None
    try:
        offering(client, resource, wait_s)
    except ClusterError:
        close(client)
        raise
    return client


def offering(client, resource: str, wait_s: float = 0.0) -> dict[str, dict]:
    """The workers offering ``resource``, by address (waiting up to ``wait_s`` for a first one)."""
    deadline = time.monotonic() + wait_s
    while True:
        workers = client.scheduler_info(n_workers=-1)["workers"]
        found = {a: w for a, w in workers.items() if (w.get("resources") or {}).get(resource, 0) >= 1}
        if found or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    if not found:
        raise ClusterError(f"the scheduler at {client.scheduler.address} has {len(workers)} worker(s), none offering "
                           f"the {resource!r} resource (after {wait_s:.0f} s). Start one with `dask worker "
                           f"{client.scheduler.address} --nthreads 1 --resources {resource}=1`.")
    return found


def close(client) -> None:
    """Close the client, and the LocalCluster it started (a remote cluster keeps running)."""
    cluster = client.cluster
    client.close()
    if cluster is not None:
        cluster.close()


def run_here(fn: Callable, jobs: dict[str, tuple]) -> Iterator[Outcome]:
    """The jobs in this process, in order; an exception propagates (the sequential behaviour)."""
    for name, args in jobs.items():
        yield Outcome(name, fn(*args))


def run(client, fn: Callable, jobs: dict[str, tuple], resource: str) -> Iterator[Outcome]:
    """``run_here`` without a client, ``run_tasks`` on its workers needing ``resource`` with one."""
    return run_here(fn, jobs) if client is None else run_tasks(client, fn, jobs, resource)


def run_tasks(client, fn: Callable, jobs: dict[str, tuple], resource: str, retries: int = 1,
              workers: dict[str, str] | None = None) -> Iterator[Outcome]:
    """Each job as a task needing one ``resource``, yielded as it finishes (in any order).

    ``workers`` pins a job (by name) to one worker address (a bench target); otherwise any worker
    offering the resource takes it. An exception is retried ``retries`` times (Dask's retries);
    a worker that dies mid-job sends the job to another worker. A job that still fails is an
    ``Outcome`` with the error and the last worker that ran it."""
    from distributed import as_completed

    shares = host_shares(offering(client, resource))
    futures = {}
    for name, args in jobs.items():
        pin = {"workers": [workers[name]], "allow_other_workers": False} if workers and name in workers else {}
        key = f"{getattr(fn, '__name__', 'job')}-{name}-{uuid.uuid4().hex[:8]}"
        futures[client.submit(_on_worker, fn, args, shares, key=key, resources={resource: 1}, retries=retries,
                              pure=False, **pin)] = name
    for future in as_completed(futures):
        name = futures[future]
        try:
            value, worker = future.result()
            yield Outcome(name, value, worker=worker)
        except Exception as exc:  # noqa: BLE001 - any job's failure is reported, the others go on
            yield _failure(name, exc)
        finally:
            future.release()


def _failure(name: str, exc: BaseException) -> Outcome:
    last = getattr(exc, "last_worker", None)       # distributed.KilledWorker: every worker running it died
    if last is not None:
        worker = {"name": str(last.name), "address": last.address, "host": last.host}
        return Outcome(name, error=f"{exc.allowed_failures + 1} workers died while running it, the last "
                       f"{worker['name']} ({worker['address']}); see their logs", worker=worker)
    if isinstance(exc, JobError):
        return Outcome(name, error=exc.error, worker=exc.worker)
    return Outcome(name, error=f"{type(exc).__name__}: {exc}")


class JobError(Exception):
    """A job's exception, as it comes back from a worker: the error text and that worker."""

    def __init__(self, error: str, worker: dict):
        super().__init__(error, worker)
        self.error, self.worker = error, worker

    def __str__(self) -> str:
        return f"{self.error} (on worker {self.worker.get('name')}, {self.worker.get('address')})"


def host_shares(workers: dict[str, dict]) -> dict[str, int]:
    """How many of the given workers each host runs: they split its cores between them."""
    out: dict[str, int] = {}
    for w in workers.values():
        out[w["host"]] = out.get(w["host"], 0) + 1
    return out


def threads_for(host: str, shares: dict[str, int]) -> int:
    """This worker's share of its machine's physical cores (1 when several workers share 2 cores).

    Dask's nanny starts every worker with OMP_NUM_THREADS=1 (right for its thread pool, wrong for
    one training job that has a machine to itself), so the job sets its own."""
    import psutil

    cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    return max(1, cores // max(1, shares.get(host, 1)))


def _use_threads(n: int) -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)        # read by torch and the BLAS libraries when they load
    torch = sys.modules.get("torch")    # already loaded by an earlier job in this worker
    if torch is not None:
        torch.set_num_threads(n)


def _on_worker(fn: Callable, args: tuple, shares: dict[str, int]):
    """Runs on the worker: its share of the cores, the job, and who ran it."""
    from distributed import get_worker

    w = get_worker()
    worker = {"name": str(w.name), "address": w.address, "host": w.ip}
    _use_threads(threads_for(w.ip, shares))
    try:
        return fn(*args), worker
    except Exception as exc:  # noqa: BLE001 - sent back with the worker's name, pickled as plain text
        raise JobError(f"{type(exc).__name__}: {exc}", worker) from None
