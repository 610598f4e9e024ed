"""`charrec serve` as a command: a missing extra or a port in use is one line; the real server
process answers, warns when it listens beyond this machine, and stops cleanly (exit 0, no
traceback) on Ctrl-C (SIGINT) and on SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import assert_one_line_error, invoke

ROOT = Path(__file__).resolve().parents[2]


def test_a_missing_extra_is_one_line_saying_what_to_install(monkeypatch):
    import charrec.cli.serve as cli_serve

    monkeypatch.setattr(cli_serve, "find_spec",
                        lambda name: None if name == "uvicorn" else object())
    assert_one_line_error(invoke("serve"), "needs uvicorn", "pip install 'charrec[serve]'")


def test_a_port_in_use_is_one_line():
    pytest.importorskip("uvicorn")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = invoke("serve", "--model", "bundled", "--port", port)
        assert_one_line_error(result, f"cannot listen on 127.0.0.1:{port}",
                              "choose another --port")
        assert result.exit_code == 1


@pytest.mark.parametrize("size", ["0", "-1", "nan", "inf", "2048"])
def test_a_bad_body_limit_is_a_usage_error(size):
    pytest.importorskip("uvicorn")
    result = invoke("serve", "--max-body-mb", size)
    assert_one_line_error(result, "--max-body-mb")
    assert result.exit_code == 2


def test_an_unknown_host_is_a_usage_error():
    pytest.importorskip("uvicorn")
    result = invoke("serve", "--host", "no-such-host.invalid")
    assert_one_line_error(result, "--host no-such-host.invalid")
    assert result.exit_code == 2


def serve_process(*args: str) -> tuple[subprocess.Popen, str]:
    """`charrec serve --port 0 ARGS` in a process of its own -> (process, base URL)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "charrec", "serve", "--model", "bundled",
                                "--port", "0", *args], stderr=subprocess.PIPE, text=True,
                               env=env, stdin=subprocess.DEVNULL)
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        lines.append(line)
        found = re.search(r"Serving (http://\S+/)", line)
        if found:
            return process, found.group(1), lines
        if not line and process.poll() is not None:
            break
    process.kill()
    raise AssertionError("charrec serve did not start:\n" + "".join(lines))


@pytest.mark.parametrize(("host", "stop"), [("127.0.0.1", signal.SIGINT),
                                             ("0.0.0.0", signal.SIGTERM)])
def test_the_server_answers_and_stops_cleanly(host, stop):
    pytest.importorskip("uvicorn")
    process, url, lines = serve_process("--host", host)
    try:
        url = url.replace("0.0.0.0", "127.0.0.1")
        with urllib.request.urlopen(url + "health", timeout=30) as response:
            assert json.load(response) == {"status": "ok"}
        # it answered, so uvicorn is serving and its signal handlers are in place
        process.send_signal(stop)
        _, rest = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    output = "".join(lines) + rest
    assert process.returncode == 0, output
    assert "Traceback" not in output and "charrec serve stopped" in output
    warned = "other machines on the network can reach this server" in output
    assert warned == (host != "127.0.0.1")
