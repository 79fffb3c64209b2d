"""deploy/Dockerfile built and run with podman, the way operators run it: hardened, from the hashed lock.

The image is built once per test session (podman's layer cache keeps the locked dependencies between sessions)
and every test runs its own containers from it: named ``sdm-test-<random>-<role>``, and removed by name when the
test ends, whether it passed or not. Containers run with a read-only root filesystem, every capability dropped,
``no-new-privileges`` and the image's own user (uid 10001).

On a user's machine without podman these tests skip with the reason; ``SDM_REQUIRE_PODMAN=1`` (set by ``.ci/run``)
turns the skip into a failure. podman builds on the real ``python:3.11-slim-bookworm`` base, pulled when missing;
CI, which reaches no image registry, prepares a stand-in of it first (``.ci/prepare-podman.sh``).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import text

from monitor import __version__
from monitor.demo import DEMO_REGIONS
from monitor.store.engine import current_revision, head_revision, make_engine
from tests.conftest import TOKEN, config_data, create_pg_database, drop_pg_database, require_tool
from tests.support.lockfile import normalize, read_lock
from tests.support.process import free_port, wait_for
from tests.support.regions import Simulator, mutate_breaking

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
IMAGE = "localhost/schema-drift-monitor:test"
CONFIG_PATH = "/etc/schema-drift-monitor/config.yaml"
STATE_DIR = "/var/lib/schema-drift-monitor"
UID = 10001
# The build installs every locked dependency from the package index on a cold cache (about 30 s here); pytest-timeout
# counts the session fixture's build in the first test that uses it.
BUILD_TIMEOUT_S = 600
# This machine's TLS proxy signs with a CA that only the host's bundle holds; mounted for the build, it is not in
# the image (podman build --volume). On a machine without a proxy it changes nothing.
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# How operators run it (docs/deployment.md); --read-only-tmpfs=false keeps podman from adding the writable /tmp,
# /var/tmp and /run that docker would not add either.
HARDENED = [
    "--read-only", "--read-only-tmpfs=false", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
]  # fmt: skip

pytestmark = [pytest.mark.slow, pytest.mark.timeout(BUILD_TIMEOUT_S + 120)]


def _podman_path() -> str:
    return require_tool("podman", "SDM_REQUIRE_PODMAN", "podman")


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``podman ARGS`` to completion, output captured as text; never raises on a non-zero exit."""
    return subprocess.run([_podman_path(), *args], capture_output=True, text=True, timeout=timeout, check=False)


def _revision() -> str:
    """The commit being tested (the image's revision label), or "unknown" outside a git checkout."""
    try:
        done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=30, check=False)  # fmt: skip
    except OSError:
        return "unknown"
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def _image_id() -> str | None:
    done = podman("image", "inspect", "--format", "{{.Id}}", IMAGE)
    return done.stdout.strip() if done.returncode == 0 else None


@pytest.fixture(scope="session")
def image() -> str:
    """The image built from deploy/Dockerfile for this session. The tag is reused, and the image it named before
    (built by an earlier session) is removed once replaced; the build stage's layers stay as podman's cache."""
    previous = _image_id()
    argv = ["build", "--format", "docker", "--network", "host", "-f", str(DOCKERFILE), "-t", IMAGE,
            "--build-arg", f"VERSION={__version__}", "--build-arg", f"REVISION={_revision()}"]  # fmt: skip
    if CA_BUNDLE.is_file():
        argv += ["--volume", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"]
    done = podman(*argv, str(ROOT), timeout=BUILD_TIMEOUT_S)
    assert done.returncode == 0, f"podman build failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    if previous is not None and previous != _image_id():
        podman("rmi", previous)  # fails harmlessly while a container of someone else's still uses it
    return IMAGE


@contextlib.contextmanager
def removed_afterwards(role: str) -> Iterator[str]:
    """A unique container name; the container (and a volume of the same name) is removed by name afterwards."""
    name = f"sdm-test-{uuid.uuid4().hex[:8]}-{role}"
    try:
        yield name
    finally:
        podman("rm", "--force", "--time", "0", name)
        podman("volume", "rm", "--force", name)


def inspect(name: str) -> dict[str, Any]:
    done = podman("inspect", "--type", "container", name)
    assert done.returncode == 0, done.stderr
    (data,) = json.loads(done.stdout)
    return dict(data)


def stop(name: str) -> int:
    """SIGTERM (the image's STOPSIGNAL) with 30 s of grace; the container's exit code."""
    done = podman("stop", "--time", "30", name, timeout=60)
    assert done.returncode == 0, done.stderr
    return int(inspect(name)["State"]["ExitCode"])


def logs(name: str) -> str:
    done = podman("logs", name)
    return done.stdout + done.stderr


def _get(port: int, path: str) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=3)
    except httpx.HTTPError:
        return None


def metric(port: int, name: str, **labels: str) -> float | None:
    """The value of ``name{labels}`` (those labels among others) on the container's /metrics; None when absent."""
    response = _get(port, "/metrics")
    if response is None or response.status_code != 200:
        return None
    for line in response.text.splitlines():
        if line.startswith(name + "{"):
            series, value = line.rsplit(" ", 1)
            if all(f'{key}="{want}"' in series for key, want in labels.items()):
                return float(value)
    return None


def process_status(name: str) -> dict[str, str]:
    """``/proc/1/status`` of the container's main process, as seen inside it."""
    done = podman("exec", name, "cat", "/proc/1/status")
    assert done.returncode == 0, done.stderr
    return dict(line.split(":\t", 1) for line in done.stdout.splitlines() if ":\t" in line)


# --- the image -----------------------------------------------------------------------------------------------


def test_the_image_is_labelled_with_the_version_and_the_commit(image: str) -> None:
    done = podman("image", "inspect", image)
    assert done.returncode == 0, done.stderr
    (data,) = json.loads(done.stdout)
    config = data["Config"]
    assert config["Labels"]["org.opencontainers.image.version"] == __version__
    assert config["Labels"]["org.opencontainers.image.revision"] == _revision()
    assert config["User"] == f"{UID}:{UID}"
    # --format docker keeps the HEALTHCHECK (podman's default OCI format drops it); podman shows it beside Config.
    probe = " ".join(data["Healthcheck"]["Test"])
    assert probe.endswith("schema-drift-monitor healthcheck --config /etc/schema-drift-monitor/config.yaml")
    assert config["StopSignal"] in ("SIGTERM", "15")


def test_the_image_holds_exactly_the_locked_dependencies_and_no_installer(image: str) -> None:
    """What the image installed is what deploy/requirements.lock pins, for every package, plus the project."""
    code = (
        "import importlib.metadata as m, importlib.util as u, json; "
        "print(json.dumps({'dists': {d.metadata['Name']: d.version for d in m.distributions()}, "
        "'pip': u.find_spec('pip') is not None}))"
    )
    done = podman("run", "--rm", "--network", "none", *HARDENED, "--entrypoint", "python", image, "-c", code)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    installed = {normalize(name): version for name, version in found["dists"].items()}
    pins = {pin.name: pin.version for pin in read_lock() if pin.applies_to_the_image()}
    assert installed.pop("schema-drift-monitor") == __version__
    assert installed == pins
    assert found["pip"] is False


# --- the demo: hardened, healthy, stopped by SIGTERM ---------------------------------------------------------


def test_the_hardened_demo_serves_the_host_passes_its_healthcheck_and_exits_0_on_sigterm(image: str) -> None:
    port = free_port()
    with removed_afterwards("demo") as name:
        run = podman("run", "--detach", "--name", name, "--publish", f"127.0.0.1:{port}:9478", *HARDENED,
                     "--volume", f"{name}:{STATE_DIR}", image,
                     "demo", "--listen", "0.0.0.0:9478", "--interval", "2s")  # fmt: skip
        assert run.returncode == 0, run.stderr

        first_poll = {"region": DEMO_REGIONS[0], "schema": "images"}
        wait_for(lambda: metric(port, "schemadrift_poll_success", **first_poll) == 1, 60, "the demo's first poll")
        ui = _get(port, "/ui/")
        assert ui is not None and ui.status_code == 200 and "<html" in ui.text.lower()
        healthcheck = podman("healthcheck", "run", name)
        assert healthcheck.returncode == 0, healthcheck.stdout + healthcheck.stderr

        status = process_status(name)
        assert status["Uid"].split()[:2] == [str(UID), str(UID)]  # real and effective
        assert int(status["CapEff"], 16) == 0 and int(status["CapBnd"], 16) == 0
        assert status["NoNewPrivs"].strip() == "1"
        written = podman("exec", name, "touch", "/opt/schema-drift-monitor/x")
        assert written.returncode != 0 and "Read-only file system" in written.stderr
        assert inspect(name)["HostConfig"]["ReadonlyRootfs"] is True

        assert stop(name) == 0
        output = logs(name)
    assert "Traceback" not in output, output[-3000:]


# --- run and db upgrade against the host's region and PostgreSQL ---------------------------------------------

R1 = {"cloud": "sim", "region": "r1", "schema": "images"}


def _host_config(simulator: Simulator, database_url: str, port: int, path: Path) -> Path:
    """A config for the container on the host's network: the simulator's regions, PostgreSQL, a free port; the
    token comes from the container's environment."""
    data = config_data(simulator, database_url, interval="1s", timeout="3s")
    data["http"]["listen"] = f"127.0.0.1:{port}"
    data["clouds"][0]["auth"]["token"] = "${SIM_TOKEN}"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    path.chmod(0o644)  # read by uid 10001 inside the container
    return path


def _on_host_network(name: str, config: Path) -> list[str]:
    """``podman run`` options for a container that reaches the host's loopback: the simulator and PostgreSQL.
    The HEALTHCHECK probes port 9478, which this config does not listen on: it is left out here."""
    return ["--name", name, "--network", "host", *HARDENED, "--no-healthcheck",
            "--volume", f"{config}:{CONFIG_PATH}:ro", "--env", f"SIM_TOKEN={TOKEN}"]  # fmt: skip


@pytest.mark.postgres
def test_db_upgrade_then_run_on_postgresql_record_a_change_of_a_host_region(
    image: str, pg_server: str, simulator: Simulator, tmp_path: Path
) -> None:
    database = create_pg_database()
    port = free_port()
    config = _host_config(simulator, pg_server + database, port, tmp_path / "config.yaml")
    try:
        with removed_afterwards("upgrade") as upgrader, removed_afterwards("run") as runner:
            upgrade = podman("run", *_on_host_network(upgrader, config), image, "db", "upgrade", "--config",
                             CONFIG_PATH)  # fmt: skip
            assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
            engine = make_engine(pg_server + database)
            try:
                assert current_revision(engine) == head_revision()
            finally:
                engine.dispose()

            run = podman("run", "--detach", *_on_host_network(runner, config), image)  # the image's CMD: run
            assert run.returncode == 0, run.stderr
            wait_for(lambda: metric(port, "schemadrift_poll_success", **R1) == 1, 60, "the first poll of r1")
            simulator.set_document("r1", "images", mutate_breaking(simulator.document("r1", "images")))
            wait_for(lambda: metric(port, "schemadrift_changes_total", **R1, severity="breaking") == 1, 60,
                     "the breaking change recorded")  # fmt: skip

            assert stop(runner) == 0
            output = logs(runner) + logs(upgrader)
        assert "stopped" in output and "Traceback" not in output, output[-3000:]
        assert TOKEN not in output
        assert _recorded_rules(pg_server + database) == {"property-removed", "enum-value-added"}
    finally:
        drop_pg_database(database)


RULES_OF_R1_IMAGES = (
    "SELECT c.rule FROM changes c JOIN targets t ON t.id = c.target_id WHERE t.region = 'r1' AND t.schema = 'images'"
)


def _recorded_rules(url: str) -> set[str]:
    """The rules of the changes the container wrote to PostgreSQL for r1/images."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(RULES_OF_R1_IMAGES)).all()
    finally:
        engine.dispose()
    return {rule for (rule,) in rows}
