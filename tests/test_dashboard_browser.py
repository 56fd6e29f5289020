"""The dashboard in a real browser: headless Chromium against the app served on a loopback port.

Needs Chromium (CI: ``apt-get install -y chromium``); skipped with that hint when it is missing.
"""
from __future__ import annotations

import os
import struct

import pytest
from test_dashboard import write_results

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chromium():
    from tools.screenshots import find_chromium

    binary = find_chromium()
    if not binary:
        pytest.skip("Chromium is not installed; install it with: apt-get install -y chromium")
    return binary


def png_size(path) -> tuple[int, int]:
    data = open(path, "rb").read(24)
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_pages_render_in_headless_chromium_and_screenshot(chromium, tmp_path):
    from tools.screenshots import DEFAULT_PAGES, capture, start_server, stop_server

    results = write_results(tmp_path / "results")
    proc, url = start_server(results, [str(tmp_path / "runs")], log=tmp_path / "server.log")
    assert url.startswith("http://127.0.0.1:")
    try:
        shots = capture(url, tmp_path / "shots", DEFAULT_PAGES, width=1400, timeout=60)
    finally:
        stop_server(proc)
    assert proc.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.kill(proc.pid, 0)   # the server process is gone, not just detached

    titles = {"overview": "Overview", "trade-offs": "Trade-offs", "per-class": "Per class", "training": "Training"}
    for shot in shots:
        assert shot["title"] == "edgedistill dashboard"
        assert shot["heading"] == f"edgedistill · {titles[shot['page']]}"
        assert shot["exceptions"] == 0, f"{shot['page']} shows an exception"
        width, height = png_size(shot["path"])
        assert width == 1400 and height >= 600
    charts = {s["page"]: s["charts"] for s in shots}
    assert charts["trade-offs"] == 2 and charts["per-class"] == 3 and charts["training"] == 1
