"""A throw-away nginx on a loopback port that serves the Glance/IMS schema documents for any region.

``Nginx(documents_dir)`` writes its config, error log and pid file into a new temporary directory and
serves ``/<region>/v2/schemas/<name>`` from ``<documents_dir>/<name>.json`` with one regex location, so
the number of regions costs nothing. ``start()`` returns once a request is answered (or raises
:class:`NginxError` with the error log's tail); ``stop()`` always ends the process and removes the
directory. It is a context manager, and the process is stopped on Ctrl-C too. With ``log_bytes=True`` nginx
logs each request's size and its response's (``$request_length``, ``$bytes_sent``: headers included, as on
the wire) and :meth:`Nginx.logged` reads them back. nginx sends ``ETag`` and ``Last-Modified`` for these
static files and answers a request quoting them with ``304 Not Modified``; ``gzip=True`` compresses the
documents for clients that accept it (its ETag is then a weak one, as nginx makes it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

STARTUP_TIMEOUT_S = 10.0
SCHEMAS = ("images", "image", "members", "member")

CONFIG_TEMPLATE = """\
daemon off;
master_process on;
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
{user}
events {{ worker_connections 8192; }}
http {{
    {access_log}
    {gzip}
    client_body_temp_path {prefix}/tmp-body;
    proxy_temp_path {prefix}/tmp-proxy;
    fastcgi_temp_path {prefix}/tmp-fastcgi;
    uwsgi_temp_path {prefix}/tmp-uwsgi;
    scgi_temp_path {prefix}/tmp-scgi;
    # one poll round reuses each connection for thousands of requests; the rounds are minutes apart
    keepalive_requests 100000000;
    keepalive_timeout 3600s;
    sendfile on;
    tcp_nodelay on;
    open_file_cache max=16;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location ~ ^/[^/]+/v2/schemas/(\\w+)$ {{
            types {{ }}
            default_type application/json;
            alias {documents}/$1.json;
        }}
    }}
}}
"""


class NginxError(Exception):
    """nginx is missing, did not start, or did not answer in time; the message says which."""


def nginx_binary() -> str | None:
    """The nginx executable on PATH or in /usr/sbin (Debian's package), None when it is not installed."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (nginx fails loudly if it is taken meanwhile)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Nginx:
    """One nginx master (plus ``workers`` worker processes) serving ``documents_dir``."""

    def __init__(self, documents_dir: Path, workers: int = 1, *, log_bytes: bool = False, gzip: bool = False) -> None:
        self.documents_dir = documents_dir.resolve()
        self.workers = workers
        self.log_bytes = log_bytes
        self.gzip = gzip
        self.port = 0
        self._prefix: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``; a region's endpoint is ``<base_url>/<region>``."""
        return f"http://127.0.0.1:{self.port}"

    def url(self, region: str, schema: str) -> str:
        return f"{self.base_url}/{region}/v2/schemas/{schema}"

    def start(self) -> Nginx:
        """Write the config, start nginx and wait until it answers; raises NginxError."""
        binary = nginx_binary()
        if binary is None:
            raise NginxError("nginx is not installed (Debian package nginx-light or nginx)")
        self._prefix = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
        self.port = free_port()
        config = self._prefix / "nginx.conf"
        config.write_text(self._config(), encoding="utf-8")
        self._process = subprocess.Popen(
            [binary, "-p", str(self._prefix), "-e", str(self._prefix / "error.log"), "-c", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            self._wait_until_serving()
        except BaseException:
            self.stop()
            raise
        return self

    def _config(self) -> str:
        assert self._prefix is not None
        # nginx started by root switches its workers to "nobody" unless told otherwise; nobody cannot read
        # files below a root-only temp dir, so keep the workers as root (loopback only, a benchmark)
        user = "user root;" if os.geteuid() == 0 else ""
        access_log = (
            f"log_format bytes '$status $request_length $bytes_sent'; access_log {self._prefix}/access.log bytes;"
            if self.log_bytes
            else "access_log off;"
        )
        return CONFIG_TEMPLATE.format(
            workers=self.workers, prefix=self._prefix, user=user, port=self.port, documents=self.documents_dir,
            access_log=access_log, gzip="gzip on; gzip_types application/json;" if self.gzip else "gzip off;",
        )  # fmt: skip

    def logged(self) -> list[tuple[int, int, int]]:
        """(status, request bytes, response bytes) of every request so far, oldest first (``log_bytes`` only)."""
        if self._prefix is None or not (self._prefix / "access.log").exists():
            return []
        lines = (self._prefix / "access.log").read_text(encoding="ascii").splitlines()
        return [(int(status), int(request), int(sent)) for status, request, sent in (line.split() for line in lines)]

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        probe = self.url("r0000", SCHEMAS[0])
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise NginxError(f"nginx exited with code {self._process.returncode}: {self.error_log_tail()}")
            try:
                with urllib.request.urlopen(probe, timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise NginxError(f"nginx did not answer {probe} within {STARTUP_TIMEOUT_S:g}s: {self.error_log_tail()}")
            time.sleep(0.05)

    def error_log_tail(self, lines: int = 5) -> str:
        """The last lines of nginx's error log (empty when there is none)."""
        if self._prefix is None:
            return ""
        try:
            text = (self._prefix / "error.log").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def stop(self) -> None:
        """Stop nginx (SIGTERM: fast shutdown; SIGKILL after 5 s) and remove its directory."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._prefix is not None:
            shutil.rmtree(self._prefix, ignore_errors=True)
            self._prefix = None

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
