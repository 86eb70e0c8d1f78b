"""Running notebooks headless, reliably: used by ``bench --course`` and the tests.

Why this file exists: ``nbclient.NotebookClient`` alone stalled on this project's
machines, in two ways, each seen and measured here (nbclient 0.11.0,
jupyter_client 8.10.0, the newest at the time; no kept library covers either):

- kernels talk over Unix sockets where possible: with TCP, a kernel started at
  the same moment as another program's could pick the same free ports, and the
  notebook then waited forever for a reply sent elsewhere;
- the shell channel is polled in short steps: after a cell that shows widgets,
  nbclient sometimes received the kernel's reply only when the cell's whole
  timeout had passed (jupyter/nbclient#312), which turned 15 s lessons into 300 s.

Why it lives in the package and not under ``tests/``: its users are
``tests/test_notebooks.py``, ``tests/test_widgets.py``, ``tests/test_course.py``
and ``python -m hrnet_teach.bench --course``, which a learner runs from an
installed package (no ``tests/`` there). When nbclient fixes #312, try
``make_client`` with a plain ``NotebookClient`` on the notebook tests; if none
stalls, this file can go.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from queue import Empty

from nbclient import NotebookClient

POLL_S = 0.5


def kernel_manager(folder: str):
    """A python3 kernel whose sockets live in ``folder`` (Unix sockets on POSIX)."""
    from jupyter_client.manager import AsyncKernelManager as KernelManager  # nbclient drives it asynchronously

    if os.name == "posix":
        return KernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(folder, "kernel"))
    return KernelManager(kernel_name="python3")


class PollingClient(NotebookClient):
    """An nbclient client on a Unix-socket kernel that asks the shell channel for
    the reply every POLL_S seconds. It owns its kernel and shuts it down at the end."""

    def create_kernel_manager(self):
        self.km = kernel_manager(tempfile.mkdtemp(prefix="ht-kernel-"))  # short path: socket paths are limited
        return self.km

    async def async_start_new_kernel_client(self):
        client = await super().async_start_new_kernel_client()
        channel = client.shell_channel
        original = channel.get_msg

        async def get_msg(timeout=None):
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                step = POLL_S if deadline is None else max(0.0, min(POLL_S, deadline - time.monotonic()))
                try:
                    return await original(timeout=step)
                except Empty:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise

        channel.get_msg = get_msg
        return client


def make_client(nb, cwd: str | Path, timeout: int = 300, **kwargs) -> PollingClient:
    """A client for ``nb`` running in ``cwd`` on a fresh Unix-socket kernel."""
    return PollingClient(nb, timeout=timeout, startup_timeout=120, kernel_name="python3",
                         resources={"metadata": {"path": str(cwd)}}, **kwargs)
