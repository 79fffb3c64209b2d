"""README "Point it at real regions", followed literally in a fresh directory (issue 18.1, "done when").

The commands are read from the README's own block and run as written: ``cp`` the example, ``export`` the one
secret it names (with the README's own placeholder value), ``config check``, ``run``. Nothing else is edited.
``run`` polls the real Huawei Cloud endpoint, so the daemon runs in a network namespace of its own with only
loopback (``unshare -rn``): no request leaves the machine on any machine, every poll fails (name resolution), and
the test asserts that this is counted while the daemon keeps running and stops cleanly. The test reads the
daemon's /metrics from inside that namespace (``nsenter``), on the port the example config gives.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import _require
from tests.support.process import wait_for

pytestmark = pytest.mark.slow  # the CLI and the daemon as processes

ROOT = Path(__file__).resolve().parents[2]
CLI = ".venv/bin/schema-drift-monitor"
SCHEMAS = ("images", "image", "members", "member")


def readme_commands() -> list[str]:
    """The shell lines of the README's "Point it at real regions" block, without their comments."""
    section = (ROOT / "README.md").read_text("utf-8").split("## Point it at real regions", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "the section has no sh block"
    lines = [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line]


@dataclass
class Shell:
    """A user's shell in a fresh clone: a working directory and the environment, changed only by ``export``."""

    cwd: Path
    env: dict[str, str]

    def run(self, command: str) -> subprocess.CompletedProcess[str] | None:
        """``cp`` and ``export`` as a shell does them; the monitor's command as a process (60 s at most)."""
        words = shlex.split(command)
        if words[0] == "cp":
            shutil.copy(ROOT / words[1], self.cwd / words[2])
            return None
        if words[0] == "export":
            name, _, value = words[1].partition("=")
            self.env[name] = value
            return None
        return subprocess.run(self.argv(command), cwd=self.cwd, env=self.env, capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip

    def argv(self, command: str) -> list[str]:
        words = shlex.split(command)
        assert words[0] == CLI, f"the README runs {words[0]}, not {CLI}"
        return [sys.executable, "-m", "monitor", *words[1:]]


@pytest.fixture
def shell(tmp_path: Path) -> Shell:
    """No variable of the example or the reference is set beforehand: only what the README exports counts."""
    names = set(re.findall(r"\$\{(\w+)\}", (ROOT / "docs" / "config.reference.yaml").read_text("utf-8")))
    env = {name: value for name, value in os.environ.items() if name not in names}
    return Shell(tmp_path, env)


def test_the_readme_steps_reach_config_check_ok_with_the_one_secret_they_name(shell: Shell) -> None:
    commands = readme_commands()
    assert [shlex.split(c)[:2] for c in commands] == [
        ["cp", "config.example.yaml"], ["export", "IMS_AUTH_TOKEN=..."], [CLI, "config"], [CLI, "run"],
    ]  # fmt: skip
    for command in commands[:2]:
        shell.run(command)

    checked = shell.run(commands[2])

    assert checked is not None and checked.returncode == 0, checked.stderr if checked else None
    assert "config.yaml: OK — 1 cloud(s), 4 target(s)" in checked.stdout
    assert "huawei/cn-north-4/images  https://ims.cn-north-4.myhuaweicloud.com/v2/schemas/images" in checked.stdout


def _isolation() -> None:
    """Skips (or fails under SDM_REQUIRE_NETNS=1) where a user network namespace cannot be made."""
    tools = [tool for tool in ("unshare", "nsenter", "ip") if shutil.which(tool) is None]
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True, check=False) if not tools else None
    problem = f"{', '.join(tools)} not installed" if tools else None
    if probe is not None and probe.returncode != 0:
        problem = f"unshare -rn is not allowed here ({probe.stderr.decode().strip()})"
    if problem is not None:
        if _require("SDM_REQUIRE_NETNS"):
            pytest.fail(f"{problem} and SDM_REQUIRE_NETNS is set")
        pytest.skip(f"{problem}: the daemon cannot be kept off the network")


@dataclass
class Isolated:
    """The daemon in its own network namespace; :meth:`get` asks it from inside that namespace."""

    process: subprocess.Popen[bytes]
    listen: str
    cwd: Path

    def get(self, path: str) -> tuple[int, str] | None:
        """Status and body of ``GET path``; None while the daemon does not answer."""
        script = ("import sys, urllib.request\nwith urllib.request.urlopen(sys.argv[1], timeout=3) as r:\n"
                  "    sys.stdout.write(str(r.status) + '\\n' + r.read().decode())")  # fmt: skip
        argv = ["nsenter", "--preserve-credentials", "-U", "-n", "-t", str(self.process.pid),
                sys.executable, "-c", script, f"http://{self.listen}{path}"]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
        if done.returncode != 0:
            return None
        status, _, body = done.stdout.partition("\n")
        return int(status), body


@pytest.fixture
def isolated_run(shell: Shell) -> Iterator[Isolated]:
    _isolation()
    commands = readme_commands()
    for command in commands[:2]:
        shell.run(command)
    listen = yaml.safe_load((shell.cwd / "config.yaml").read_text("utf-8"))["http"]["listen"]
    argv = ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *shell.argv(commands[3])]
    with (shell.cwd / "daemon.log").open("wb") as log:
        process = subprocess.Popen(argv, cwd=shell.cwd, env=shell.env, stdout=log, stderr=subprocess.STDOUT)
    yield Isolated(process, listen, shell.cwd)
    if process.poll() is None:
        process.kill()
        process.wait()


def _failures(metrics: str, schema: str) -> float:
    series = re.findall(r"^schemadrift_poll_failures_total\{([^}]*)\} (\S+)$", metrics, re.M)
    wanted = ('cloud="huawei"', 'region="cn-north-4"', f'schema="{schema}"')
    return sum(float(value) for labels, value in series if all(label in labels.split(",") for label in wanted))


def test_the_readme_run_starts_and_counts_polls_that_cannot_reach_the_cloud(isolated_run: Isolated) -> None:
    def every_target_failed() -> bool:
        answer = isolated_run.get("/metrics")
        return answer is not None and all(_failures(answer[1], schema) >= 1 for schema in SCHEMAS)

    wait_for(every_target_failed, timeout=90, what="a counted failure for each of the 4 targets", step=0.5)

    assert isolated_run.process.poll() is None, "the failed polls stopped the daemon"
    health = isolated_run.get("/healthz")
    assert health is not None and health[0] == 200
    isolated_run.process.send_signal(signal.SIGTERM)
    assert isolated_run.process.wait(timeout=30) == 0
    log = (isolated_run.cwd / "daemon.log").read_text("utf-8")
    assert "Traceback" not in log and "huawei/cn-north-4/images" in log
    assert (isolated_run.cwd / "data" / "schemadrift.db").is_file()  # the example's database, where the README runs
