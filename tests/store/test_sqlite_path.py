"""A SQLite database in a directory the monitor cannot write: every command that opens it says so in words,
naming the directory; ``config check`` warns. Tried for real: a read-only bind mount in a private mount
namespace (as root, ``chmod`` stops nothing), and a directory of another user (``setpriv`` to ``nobody``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from monitor.store.sqlite_path import not_writable, sqlite_file
from tests.conftest import _require
from tests.support.process import cli, free_port

REQUIRE = "SDM_REQUIRE_READONLY_MOUNT"
NOBODY = 65534


def test_only_a_sqlite_file_has_a_directory_to_check(tmp_path: Path) -> None:
    assert sqlite_file("postgresql://u:pw@127.0.0.1/x") is None and not_writable("postgresql://u:pw@h/x") is None
    assert sqlite_file("sqlite://") is None and sqlite_file("sqlite:///:memory:") is None
    assert sqlite_file(f"sqlite:///{tmp_path}/x.db") == tmp_path / "x.db"
    assert sqlite_file("sqlite:///data/x.db") == Path.cwd() / "data" / "x.db"


def test_a_writable_directory_or_one_that_can_be_created_is_fine(tmp_path: Path) -> None:
    assert not_writable(f"sqlite:///{tmp_path}/x.db") is None
    assert not_writable(f"sqlite:///{tmp_path}/not/yet/x.db") is None  # created at the first start


def test_a_directory_that_is_a_file_cannot_hold_the_database(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("")
    for directory in (tmp_path / "plain", tmp_path / "plain" / "below"):
        problem = not_writable(f"sqlite:///{directory}/x.db")
        assert problem == f"database directory {directory} cannot be made: {tmp_path}/plain is a file; set " \
                          "database.url to another place"  # fmt: skip


# --- for real: a read-only mount, another user's directory ---------------------------------------


def _mount_problem() -> str | None:
    """Why a private read-only bind mount cannot be made here (None: it can)."""
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    with tempfile.TemporaryDirectory() as directory:
        probe = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", _READONLY + ' && ! touch "$1/probe"',
             "sh", directory],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    if probe.returncode != 0:
        return f"cannot make a read-only bind mount in a private mount namespace (needs root): {probe.stderr.strip()}"
    return None


_READONLY = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1"'


@pytest.fixture(scope="module")
def mounts() -> None:
    """Skips (fails under SDM_REQUIRE_READONLY_MOUNT=1) when read-only bind mounts cannot be made."""
    problem = _mount_problem()
    if problem is not None:
        if _require(REQUIRE):
            pytest.fail(f"{problem} and {REQUIRE} is set")
        pytest.skip(problem)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Path]:
    """A directory everyone may read (pytest's own are the owner's only), with a config whose SQLite database
    is ``<it>/db/x.db``, already migrated; removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="sdm-ro-"))
    try:
        root.chmod(0o755)
        (root / "db").mkdir(mode=0o755)
        data = {
            "database": {"url": f"sqlite:///{root}/db/x.db"},
            "http": {"listen": f"127.0.0.1:{free_port()}"},
            "clouds": [{"name": "c", "endpoint": "http://127.0.0.1:9/{region}", "regions": ["r"], "allow_http": True}],
        }
        (root / "c.yaml").write_text(yaml.safe_dump(data))
        (root / "c.yaml").chmod(0o644)
        upgraded = cli("db", "upgrade", "--config", str(root / "c.yaml"))
        assert upgraded.returncode == 0, upgraded.stderr
        yield root
    finally:
        shutil.rmtree(root)


def on_readonly(directory: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m monitor ARGS`` in a private mount namespace where ``directory`` is mounted read-only."""
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", _READONLY + ' && shift && exec "$@"', "sh",
         str(directory), sys.executable, "-m", "monitor", *args],
        capture_output=True, text=True, timeout=60, check=False, cwd=cwd,
    )  # fmt: skip


COMMANDS = [
    ["run"],
    ["check"],
    ["history"],
    ["snapshots", "--cloud", "c", "--region", "r", "--schema", "images"],
    ["expect", "--cloud", "c", "--for", "1h", "--comment", "change 42"],
    ["db", "upgrade"],
]


@pytest.mark.slow
@pytest.mark.usefixtures("mounts")
def test_every_command_that_opens_the_database_names_the_read_only_directory(world: Path, tmp_path: Path) -> None:
    said = f"database directory {world}/db is not writable (a read-only file system): SQLite keeps x.db-wal"
    config = ("--config", str(world / "c.yaml"))
    export = ["export", "git", str(tmp_path / "git"), *config]
    demo = ["demo", "--database", f"sqlite:///{world}/db/x.db", "--listen", f"127.0.0.1:{free_port()}",
            "--duration", "1s"]  # fmt: skip
    for command in [*([*c, *config] for c in COMMANDS), export, demo]:
        result = on_readonly(world / "db", *command, cwd=tmp_path)
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        assert said in result.stderr, (command, result.stderr)
        assert "Traceback" not in result.stderr and "Errno" not in result.stderr, (command, result.stderr)

    checked = on_readonly(world / "db", "config", "check", *config, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert f"  warning: {said}" in checked.stdout
    assert "warning" not in cli("config", "check", *config).stdout  # writable again outside the namespace


@pytest.mark.slow
@pytest.mark.usefixtures("mounts")  # root, to become another user
def test_a_directory_of_another_user_is_named_with_the_user_who_cannot_write_it(world: Path) -> None:
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is missing although unshare is there")
    as_nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
    env = {**os.environ, "HOME": str(world), "PYTHONDONTWRITEBYTECODE": "1"}
    config = ("--config", str(world / "c.yaml"))
    said = f"database directory {world}/db is not writable: SQLite keeps x.db-wal"
    for command in (["check"], ["history"]):
        result = subprocess.run([*as_nobody, sys.executable, "-m", "monitor", *command, *config],
                                capture_output=True, text=True, timeout=60, env=env, check=False)  # fmt: skip
        assert result.returncode == 1 and said in result.stderr, (command, result.stderr)
        assert f"(uid {NOBODY})" in result.stderr
    checked = subprocess.run([*as_nobody, sys.executable, "-m", "monitor", "config", "check", *config],
                             capture_output=True, text=True, timeout=60, env=env, check=False)  # fmt: skip
    assert checked.returncode == 0 and f"  warning: {said}" in checked.stdout, checked.stderr
