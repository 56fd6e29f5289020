"""``edgedistill dashboard``: start Streamlit on a results folder.

    edgedistill dashboard                                 results/ and runs/ of this checkout
    edgedistill dashboard --results results --port 8502   another port
    edgedistill dashboard --runs /data/runs --headless    a server without a browser to open
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

APP = Path(__file__).with_name("app.py")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", default="results", metavar="DIR",
                        help="folder of results/<run>/ (metrics.json, export.json, bench.json)")
    parser.add_argument("--runs", action="append", metavar="DIR",
                        help="folder of runs/<run>/ whose checkpoints and artifacts the playground may load "
                             "(repeat for several; default: runs)")
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--address", default="127.0.0.1",
                        help="interface to listen on; 0.0.0.0 serves other machines too (the playground runs models)")
    parser.add_argument("--headless", action="store_true",
                        help="do not open a browser (the default when there is no terminal or no display)")


def has_terminal() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def streamlit_command(results: str, runs: list[str], port: int, address: str, headless: bool) -> tuple[list[str], dict]:
    """The ``streamlit run`` command line and environment; also used by the screenshot script and tests."""
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP),
           "--server.port", str(port), "--server.address", address,
           # Streamlit's first run asks for an e-mail address on the terminal; without a terminal
           # (nohup, a service, CI) that prompt ends the process.
           "--server.showEmailPrompt", "false",
           "--browser.gatherUsageStats", "false",
           # The app reads result files through its own mtime-keyed cache; no need to watch sources.
           "--server.fileWatcherType", "none"]
    if headless:
        # Otherwise Streamlit decides: it opens a browser only where there is a display.
        cmd += ["--server.headless", "true"]
    env = {**os.environ, "EDGEDISTILL_RESULTS": str(Path(results).resolve()),
           "EDGEDISTILL_RUNS": os.pathsep.join(str(Path(r).resolve()) for r in runs)}
    return cmd, env


def die_with_parent(parent_pid: int):
    """A ``preexec_fn`` that has Linux send the server SIGTERM when this process dies, ``kill -9``
    included (the signal handlers below cover only the signals that can be caught). Elsewhere a
    no-op."""
    def arm() -> None:
        if not sys.platform.startswith("linux"):
            return
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)            # PR_SET_PDEATHSIG
        if os.getppid() != parent_pid:           # the parent died before the line above took effect
            os.kill(os.getpid(), signal.SIGTERM)
    return arm


def main(args: argparse.Namespace) -> int:
    results = Path(args.results)
    runs = args.runs or ["runs"]
    if results.exists() and not results.is_dir():
        print(f"edgedistill dashboard: --results {results} is a file; pass the folder that holds results/<run>/",
              file=sys.stderr)
        return 2
    if not 1 <= args.port <= 65535:
        print(f"edgedistill dashboard: --port {args.port} is not a TCP port; give 1..65535 (default 8501; below 1024 "
              "needs root)", file=sys.stderr)
        return 2
    import importlib.util

    if importlib.util.find_spec("streamlit") is None:
        print("edgedistill dashboard: this command needs the full install (`make install`): streamlit is not "
              "installed here (the slim install benches bundles only)", file=sys.stderr)
        return 2
    if not results.is_dir():
        # Not an error: the page itself explains how to produce results.
        print(f"note: {results} does not exist yet; the dashboard will say how to produce results", file=sys.stderr)
    cmd, env = streamlit_command(str(results), runs, args.port, args.address, args.headless or not has_terminal())
    print(f"dashboard: results={results.resolve()} runs={os.pathsep.join(runs)} -> http://{args.address}:{args.port}")
    proc = subprocess.Popen(cmd, env=env, preexec_fn=die_with_parent(os.getpid()))  # noqa: PLW1509
    # Stopping this process (kill PID, Ctrl-C) must stop the server too, not leave it serving as an orphan.
    handlers = {sig: signal.signal(sig, lambda signum, _frame: proc.send_signal(signum))
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return proc.wait()
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
