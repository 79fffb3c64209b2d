"""deploy/requirements.lock, offline: every dependency pinned with hashes, in agreement with pyproject.toml, and
what deploy/Dockerfile installs from (tests/deploy/test_image.py proves the image holds exactly these pins)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.support.lockfile import (
    LOCK,
    PYPROJECT_VIA,
    LockError,
    disagreements,
    lock_command,
    parse_lock,
    pyproject_dependencies,
    read_lock,
)

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DEPLOYMENT_DOC = ROOT / "docs" / "deployment.md"


def test_every_locked_package_is_pinned_exactly_once_with_hashes() -> None:
    pins = read_lock()
    assert len(pins) > 20
    for pin in pins:
        assert pin.hashes, f"{pin.name} has no --hash"
        assert pin.via, f"{pin.name}: nothing needs it (a hand edit?)"
    keys = [(pin.name, pin.marker) for pin in pins]
    assert len(keys) == len(set(keys))


def test_the_lock_agrees_with_the_dependencies_of_pyproject() -> None:
    problems = disagreements(pyproject_dependencies(), read_lock())
    assert not problems, "; ".join(problems) + f". Regenerate the lock: {lock_command()}"


def test_the_lock_is_closed_every_package_it_names_as_a_need_is_pinned() -> None:
    pins = read_lock()
    names = {pin.name for pin in pins}
    for pin in pins:
        for need in pin.via:
            assert need == PYPROJECT_VIA or re.sub(r"[-_.]+", "-", need).lower() in names, (pin.name, need)


def test_a_changed_pyproject_is_caught() -> None:
    """Added, dropped and narrowed dependencies each make a sentence naming the package."""
    dependencies = pyproject_dependencies()
    httpx = next(d for d in dependencies if d.startswith("httpx"))
    dropped = next(d for d in dependencies if d.startswith("jsonpatch"))
    changed = [d for d in dependencies if d not in (httpx, dropped)] + ["httpx>=99", "tenacity>=8"]
    problems = disagreements(changed, read_lock())
    assert any("tenacity" in p and "does not pin" in p for p in problems), problems
    assert any("httpx==" in p and "outside" in p and "httpx>=99" in p for p in problems), problems
    assert any("jsonpatch" in p and "no longer requires" in p for p in problems), problems
    assert len(problems) == 3


@pytest.mark.parametrize(
    "text",
    ["httpx>=0.27 \\\n    --hash=sha256:" + "0" * 64 + "\n", "--index-url https://mirror.example/simple\n", "-e .\n"],
    ids=["a range", "an index", "an editable"],
)
def test_a_lock_with_anything_but_exact_pins_is_refused(text: str) -> None:
    with pytest.raises(LockError, match=r"requirements\.lock:1: .* not an exact pin"):
        parse_lock(text)


def test_the_lock_is_for_the_python_of_the_image_and_its_command_is_documented() -> None:
    command = shlex.split(lock_command())
    assert command[:4] == ["uv", "pip", "compile", "pyproject.toml"]
    assert {"--universal", "--generate-hashes"} <= set(command)
    assert command[command.index("--output-file") + 1] == str(LOCK.relative_to(ROOT))
    python = command[command.index("--python-version") + 1]
    bases = re.findall(r"^FROM python:(\d+\.\d+)-", DOCKERFILE.read_text(encoding="utf-8"), re.MULTILINE)
    assert bases and set(bases) == {python}
    assert lock_command() in DEPLOYMENT_DOC.read_text(encoding="utf-8")


def _runs() -> list[str]:
    """The Dockerfile's RUN instructions, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    return [line.strip()[4:] for line in text.splitlines() if line.strip().startswith("RUN ")]


def test_the_dockerfile_installs_the_lock_with_hashes_then_the_project_without_dependencies() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert f"COPY {LOCK.relative_to(ROOT)} ./" in text
    installs = [shlex.split(run) for run in _runs() if " install " in run]
    locked, project = installs
    assert "--require-hashes" in locked and locked[locked.index("-r") + 1] == LOCK.name
    assert project[project.index("install") + 1 :][:3] == ["--no-deps", "--no-build-isolation", "."]
    assert text.index(f"COPY {LOCK.relative_to(ROOT)}") < text.index(
        "COPY monitor"
    )  # the dependencies' layer is reused
