"""Real tools as child processes (Prometheus, Alertmanager, …) and asking Prometheus a question."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx


class Process:
    """A tool run as a child process, its output in ``log``; :meth:`stop` ends it (SIGTERM, then SIGKILL)."""

    def __init__(self, args: list[str], log: Path) -> None:
        self._log = log.open("w")
        self.log_path = log
        self.process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def prom_query(base: str, expr: str) -> dict[str, Any]:
    """Prometheus's answer to an instant query; ``{}`` while it is not up yet (refused, or a plain-text 503)."""
    try:
        response = httpx.get(f"{base}/api/v1/query", params={"query": expr}, timeout=10)
        return dict(response.json())
    except (httpx.TransportError, ValueError):
        return {}
