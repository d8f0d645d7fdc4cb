"""Starts `creditgate demo --serve` once for the Python client tests."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest


def _binary() -> str:
    binary = os.environ.get("CREDITGATE_BIN")
    if not binary or not Path(binary).exists():
        pytest.fail("set CREDITGATE_BIN to the built creditgate binary (see .ci/run)")
    return binary


@pytest.fixture(scope="session")
def federation(tmp_path_factory):
    """The running demo federation: its endpoints.json as a dict."""
    work = tmp_path_factory.mktemp("demo")
    log = open(work / "demo.log", "w")
    process = subprocess.Popen(
        [_binary(), "demo", "--serve", "--dir", str(work)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    endpoints = work / "endpoints.json"
    deadline = time.monotonic() + 120
    while not endpoints.exists():
        if process.poll() is not None:
            pytest.fail(f"demo exited early: {(work / 'demo.log').read_text()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("demo did not write endpoints.json within 120 s")
        time.sleep(0.2)
    time.sleep(0.2)
    info = json.loads(endpoints.read_text())
    info["_dir"] = str(work)
    yield info
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("demo did not stop on SIGTERM")
    log.close()
    assert code == 0, (work / "demo.log").read_text()
