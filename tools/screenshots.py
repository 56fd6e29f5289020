"""Render dashboard pages to PNG with headless Chromium, e.g. for the README.

    python -m tools.screenshots --results results --out docs/screenshots
    python -m tools.screenshots --results results --run quickstart --pages overview trade-offs
    python -m tools.screenshots --url http://127.0.0.1:8501 --out /tmp/shots   (a dashboard already running)

Starts the app on a free loopback port (unless --url), drives Chromium over the DevTools protocol
on loopback, waits until Streamlit has finished the script and every chart is drawn, grows the
window to the page's height and saves one PNG per page. Needs the Debian/Ubuntu ``chromium``
package (``apt-get install -y chromium``) or Chrome on PATH.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

DEFAULT_PAGES = ("overview", "trade-offs", "per-class", "training")
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Headless, no sandbox (containers run as root), and nothing that phones home.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
                  "--no-proxy-server")
INSTALL_HINT = "install Chromium (Debian/Ubuntu: apt-get install -y chromium) or put Chrome on PATH"

# Ready = the script finished, the title is there, every Plotly chart has drawn its SVG.
PAGE_STATE_JS = """(() => {
  const app = document.querySelector('[data-testid="stApp"]');
  const h1 = document.querySelector('h1');
  const charts = document.querySelectorAll('[data-testid="stPlotlyChart"]').length;
  const drawn = document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot .main-svg').length;
  const main = document.querySelector('[data-testid="stMain"]');
  const block = document.querySelector('[data-testid="stMainBlockContainer"]');
  const sidebar = document.querySelector('[data-testid="stSidebarContent"]');
  return {
    state: app ? app.getAttribute('data-test-script-state') : null,
    title: document.title,
    heading: h1 ? h1.innerText.trim() : null,
    charts: charts,
    charts_drawn: document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot').length,
    svgs: drawn,
    exceptions: document.querySelectorAll('[data-testid="stException"]').length,
    // Page height = the bottom of the last element (the main pane scrolls inside the window).
    height: Math.ceil(Math.max(
      ...Array.from(block ? block.children : [])
        .map(e => e.getBoundingClientRect().bottom + (main ? main.scrollTop : 0)),
      sidebar ? sidebar.scrollHeight : 0) + 48),
    text_length: document.body.innerText.length,
  };
})()"""


# Everything here talks to 127.0.0.1: never through a proxy from the environment.
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ScreenshotError(RuntimeError):
    """The browser or the app could not be started or did not render in time."""


def find_chromium() -> str | None:
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# The app
# ---------------------------------------------------------------------------------------------

def start_server(results: str | Path, runs: list[str] | None = None, port: int | None = None,
                 timeout: float = 60, log: str | Path | None = None) -> tuple[subprocess.Popen, str]:
    """Start the dashboard headless on 127.0.0.1 and wait for its health check; returns (process, url)."""
    from dashboard.cli import streamlit_command

    port = port or free_port()
    cmd, env = streamlit_command(str(results), runs or ["runs"], port, "127.0.0.1", headless=True)
    # No toolbar and a fixed light theme: screenshots look the same on every machine.
    cmd += ["--client.toolbarMode", "viewer", "--theme.base", "light"]
    out = open(log, "wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ScreenshotError(f"the dashboard exited with code {proc.returncode} before serving"
                                  + (f"; see {log}" if log else ""))
        with contextlib.suppress(OSError):
            with _LOCAL.open(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return proc, url
        time.sleep(0.25)
    stop_server(proc)
    raise ScreenshotError(f"the dashboard did not answer on {url} within {timeout:.0f} s")


def stop_server(proc: subprocess.Popen, timeout: float = 10) -> None:
    """Stop the process started by start_server (by its pid: terminate, then kill)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


# ---------------------------------------------------------------------------------------------
# The browser, over the DevTools protocol
# ---------------------------------------------------------------------------------------------

class Chromium:
    """A headless Chromium with a fresh profile; ``open``, ``wait_ready`` and ``screenshot`` one tab."""

    def __init__(self, binary: str | None = None, width: int = 1600, height: int = 1000, timeout: float = 30):
        from websockets.sync.client import connect

        binary = binary or find_chromium()
        if not binary:
            raise ScreenshotError(f"no Chromium found; {INSTALL_HINT}")
        self.width, self.height, self._id = width, height, 0
        self._stack = contextlib.ExitStack()
        self.profile = tempfile.mkdtemp(prefix="edgedistill-chromium-")
        self._log = open(Path(self.profile) / "chromium.log", "wb")
        self.proc = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-address=127.0.0.1",
             "--remote-debugging-port=0", f"--window-size={width},{height}", "about:blank"],
            stdout=self._log, stderr=subprocess.STDOUT)
        try:
            port = self._devtools_port(timeout)
            deadline = time.monotonic() + timeout
            target = None
            while target is None and time.monotonic() < deadline:
                with _LOCAL.open(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                    target = next((t for t in json.load(r) if t.get("type") == "page"), None)
                if target is None:
                    time.sleep(0.2)
            if target is None:
                raise ScreenshotError("Chromium opened no page")
            self.ws = self._stack.enter_context(connect(target["webSocketDebuggerUrl"], max_size=None,
                                                          open_timeout=timeout, proxy=None))
        except BaseException:
            self.close()
            raise

    def _devtools_port(self, timeout: float) -> int:
        # With port 0 Chromium picks a free port and writes it to DevToolsActivePort in the profile.
        marker = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ScreenshotError(f"Chromium exited with code {self.proc.returncode}: "
                                      + (Path(self.profile) / "chromium.log").read_text(errors="replace")[-2000:])
            with contextlib.suppress(OSError, ValueError, IndexError):
                return int(marker.read_text().splitlines()[0])
            time.sleep(0.1)
        raise ScreenshotError(f"Chromium did not open its DevTools port within {timeout:.0f} s")

    def send(self, method: str, timeout: float = 30, **params) -> dict:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if msg.get("id") == self._id:  # anything else is an event we did not subscribe to
                if "error" in msg:
                    raise ScreenshotError(f"{method}: {msg['error'].get('message')}")
                return msg.get("result", {})

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def resize(self, width: int, height: int) -> None:
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def open(self, url: str, timeout: float = 60, min_charts: int = 0) -> dict:
        """Load ``url`` and wait until the page is ready and unchanged for a moment; returns its state."""
        self.resize(self.width, self.height)
        self.send("Page.navigate", url=url)
        return self.wait_ready(timeout, min_charts)

    def wait_ready(self, timeout: float = 60, min_charts: int = 0) -> dict:
        deadline, last, state = time.monotonic() + timeout, None, {}
        while time.monotonic() < deadline:
            state = self.evaluate(PAGE_STATE_JS) or {}
            ready = (state.get("state") == "notRunning" and state.get("heading")
                     and state.get("charts", 0) >= min_charts and state.get("charts_drawn") == state.get("charts"))
            # Ready twice in a row with the same text and height: Streamlit has stopped adding elements.
            signature = (state.get("text_length"), state.get("height"), state.get("svgs"))
            if ready and signature == last:
                return state
            last = signature if ready else None
            time.sleep(0.5)
        raise ScreenshotError(f"the page did not finish rendering within {timeout:.0f} s (last state: {state})")

    def screenshot(self, path: str | Path, max_height: int = 12000) -> Path:
        """Grow the viewport to the page's full height, let charts re-layout, then save a PNG."""
        state = self.evaluate(PAGE_STATE_JS) or {}
        height = int(min(max(self.height, state.get("height") or 0), max_height))
        if height != self.height:
            self.resize(self.width, height)
            time.sleep(0.5)
            self.wait_ready(30, min_charts=state.get("charts", 0))
        png = base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
        return path

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stack.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------------------------
# Pages to PNG
# ---------------------------------------------------------------------------------------------

def page_url(base: str, page: str, run: str | None = None) -> str:
    query = {"page": page, **({"run": run} if run else {})}
    return f"{base.rstrip('/')}/?{urllib.parse.urlencode(query)}"


def capture(url: str, out_dir: str | Path, pages=DEFAULT_PAGES, run: str | None = None, width: int = 1600,
            height: int = 1000, timeout: float = 60) -> list[dict]:
    """Screenshot ``pages`` of the dashboard at ``url`` into ``out_dir/<page>.png``; one state dict per page."""
    shots = []
    with Chromium(width=width, height=height) as browser:
        for page in pages:
            # Chart pages draw at least one chart; waiting for it avoids capturing a half-drawn page.
            state = browser.open(page_url(url, page, run), timeout=timeout,
                                 min_charts=1 if page in ("trade-offs", "per-class", "training", "machines") else 0)
            path = browser.screenshot(Path(out_dir) / f"{page}.png")
            shots.append({"page": page, "path": str(path), **state})
    return shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.screenshots", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default="results", metavar="DIR", help="results folder to show")
    parser.add_argument("--runs", action="append", metavar="DIR", help="runs folder(s) for the playground")
    parser.add_argument("--url", help="screenshot a dashboard already running here instead of starting one")
    parser.add_argument("--out", default="docs/screenshots", metavar="DIR", help="where the PNGs go")
    parser.add_argument("--run", help="run to show (default: the dashboard's default, the last by name)")
    parser.add_argument("--pages", nargs="+", default=list(DEFAULT_PAGES), help="page slugs, as in ?page=")
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--timeout", type=float, default=90, help="seconds to wait for each page")
    args = parser.parse_args(argv)
    if not find_chromium():
        print(f"screenshots: no Chromium found; {INSTALL_HINT}", file=sys.stderr)
        return 2
    proc = None
    try:
        url = args.url
        if not url:
            proc, url = start_server(args.results, args.runs,
                                     log=Path(tempfile.gettempdir()) / "edgedistill-dashboard.log")
        for shot in capture(url, args.out, args.pages, args.run, args.width, timeout=args.timeout):
            flag = f"  ({shot['exceptions']} exception(s) on the page!)" if shot["exceptions"] else ""
            print(f"{shot['path']}: {shot['heading']}, {shot['charts']} chart(s), {shot['height']} px{flag}")
    except ScreenshotError as e:
        print(f"screenshots: {e}", file=sys.stderr)
        return 2
    finally:
        if proc is not None:
            stop_server(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
