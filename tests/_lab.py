"""Helpers for the tests that start servers: a free port, and waiting for JupyterLab to answer."""
from __future__ import annotations

import socket
import subprocess
import time
import urllib.request


def free_port() -> int:
    """A port nothing listens on now (the system picks it; a race with another process is possible, not likely)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_server(url: str, process: subprocess.Popen, timeout: float = 90, log=None) -> None:
    """Return once the JupyterLab at ``url`` answers ``api/status``; raise, with the end of ``log`` (a path) when
    given, if its process exits first or ``timeout`` seconds pass."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {process.returncode}{_tail(log)}")
        try:
            with urllib.request.urlopen(url + "api/status", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer at {url} within {timeout} s{_tail(log)}")


def _tail(log) -> str:
    return "" if log is None else ":\n" + open(log, encoding="utf-8").read()[-2000:]
