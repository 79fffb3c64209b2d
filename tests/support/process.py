"""The monitor as a user runs it: a free loopback port, the CLI, the daemon process, and waiting on it."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m monitor ARGS`` to completion (60 s at most), output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def wait_for(
    predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition", *, step: float = 0.2,
    fail: bool = True,
) -> Any:  # fmt: skip
    """The first truthy value of ``predicate``; after ``timeout`` an AssertionError naming ``what``
    (or None, with ``fail=False``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    if not fail:
        return None
    raise AssertionError(f"{what}: not within {timeout:g}s")


class Daemon:
    """``python -m monitor run`` as a child process, its output in ``log_path``."""

    def __init__(
        self, config_path: Path, port: int, log_path: Path, log_level: str = "INFO", log_format: str = "text"
    ) -> None:
        self.port = port
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--log-level", log_level, "--log-format", log_format,
             "run", "--config", str(config_path)],
            stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def get(self, path: str) -> httpx.Response | None:
        """GET ``path`` from the daemon's HTTP server; None when it does not answer within 2 s."""
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=2)
        except httpx.HTTPError:
            return None

    def metric(self, name: str, **labels: str) -> float | None:
        """The value of the series ``name{labels}`` (exactly those labels) in /metrics; None when absent."""
        response = self.get("/metrics")
        if response is None:
            return None
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in response.text.splitlines():
            if not labels and line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
            if line.startswith(name + "{"):
                series, value = line.rsplit(" ", 1)
                got = ",".join(sorted(series[len(name) + 1 : -1].split(",")))
                if got == want:
                    return float(value)
        return None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        """Send ``sig`` (unless it already exited) and return the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=timeout)
        self._log.close()
        return code

    def log(self) -> str:
        """Everything the daemon logged so far."""
        return self.log_path.read_text()
