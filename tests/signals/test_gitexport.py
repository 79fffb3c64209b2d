"""``export git`` end to end: history from the real pipeline against the simulator, on SQLite and
PostgreSQL, exported through the CLI, then read back with the real ``git`` binary."""

from __future__ import annotations

import io
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
import yaml
from sqlalchemy import event, update

from monitor.app import Components
from monitor.cli import main
from monitor.domain import TargetKey, worst_first
from monitor.signals import gitexport
from monitor.signals.gitexport import export_git
from monitor.store.engine import make_engine, upgrade
from monitor.store.export import ExportStore
from monitor.store.records import ExportCursor, ExportedSnapshot, ExportScope, HistoryFilter
from monitor.store.repository import Repository
from monitor.store.tables import Snapshot
from tests.conftest import config_data, make_config, require_tool
from tests.support.polling import poll, start, stop
from tests.support.regions import Simulator

R1, R2, R3 = (TargetKey("sim", region, "images") for region in ("r1", "r2", "r3"))


@dataclass
class History:
    """The monitor's pipeline on one database, and the CLI config that reads the same database."""

    parts: Components
    config_path: Path
    simulator: Simulator

    def poll(self, *keys: TargetKey) -> None:
        for key in keys:
            result = poll(self.parts, key)
            assert result.ok, result

    def export(self, directory: Path, *filters: str) -> tuple[int, str]:
        out = io.StringIO()
        code = main(["export", "git", str(directory), "--config", str(self.config_path), *filters], out=out)
        return code, out.getvalue()

    @property
    def repository(self) -> Repository:
        return Repository(self.parts.database.engine)

    def snapshot_ids(self) -> list[int]:
        """Every snapshot id in the export's order: (first_seen, id)."""
        return [s.id for s in ExportStore(self.parts.database.engine).snapshots()]


def _history(simulator: Simulator, url: str, tmp_path: Path) -> Iterator[History]:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config_data(simulator, url, confirm_reads=1)))
    parts = start(make_config(simulator, url, confirm_reads=1))
    yield History(parts, path, simulator)
    stop(parts)


@pytest.fixture
def history(simulator: Simulator, migrated_db_url: str, tmp_path: Path) -> Iterator[History]:
    """On SQLite and on PostgreSQL."""
    yield from _history(simulator, migrated_db_url, tmp_path)


@pytest.fixture
def sqlite_history(simulator: Simulator, tmp_path: Path) -> Iterator[History]:
    """For the cases where the backend cannot matter (the directory checks)."""
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield from _history(simulator, url, tmp_path)


@pytest.fixture(scope="module")
def git_binary() -> str:
    return require_tool("git", "SDM_REQUIRE_GIT", "git")


@pytest.fixture
def git(git_binary: str, tmp_path: Path) -> Git:
    return Git(git_binary, tmp_path / "export")


class Git:
    """The real git binary on the export directory, without the user's or the system's configuration."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "TZ": "UTC"}

    def run(self, *args: str, ok_codes: tuple[int, ...] = (0,)) -> str:
        done = subprocess.run(
            [self.binary, "-C", str(self.directory), *args],
            capture_output=True, text=True, timeout=60, env=self.env, check=False,
        )  # fmt: skip
        assert done.returncode in ok_codes, (args, done.returncode, done.stderr)
        return done.stdout

    def commits(self) -> list[str]:
        """Commit ids of main, oldest first."""
        return self.run("log", "--reverse", "--format=%H", "main").split()

    def trailer(self, commit: str, key: str) -> str:
        return self.run("log", "-1", f"--format=%(trailers:key={key},valueonly)", commit).strip()


def _pretty(body: str) -> str:
    return json.dumps(json.loads(body), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _build_history(history: History) -> None:
    """Three first snapshots, then a breaking change in r2: four snapshots."""
    history.poll(R1, R2, R3)
    history.simulator.mutate("r2")
    history.poll(R2)


# --- the exported history -------------------------------------------------------------------------


def test_each_snapshot_becomes_one_commit_in_time_order_dated_when_first_seen(history: History, git: Git) -> None:
    _build_history(history)
    ids = history.snapshot_ids()
    code, out = history.export(git.directory)
    assert code == 0
    assert out == f"{git.directory}: 4 commit(s) added, last snapshot {ids[-1]}\n"
    lines = git.run("log", "--reverse", "--format=%an <%ae>|%cn|%aI|%cI|%(trailers:key=Snapshot-Id,valueonly)")
    rows = [line.split("|") for line in lines.splitlines() if line]
    assert [int(row[4]) for row in rows] == ids
    stored = {s.id: s for s in ExportStore(history.parts.database.engine).snapshots()}
    for author, committer, author_date, commit_date, snapshot_id in rows:
        assert author == "schema-drift-monitor <schema-drift-monitor@localhost>" and committer == "schema-drift-monitor"
        first_seen = stored[int(snapshot_id)].first_seen.replace(microsecond=0)
        assert datetime.fromisoformat(author_date) == first_seen == datetime.fromisoformat(commit_date)
        assert author_date.endswith("+00:00")


def test_subjects_name_the_target_and_the_change_commit_lists_each_change(history: History, git: Git) -> None:
    _build_history(history)
    history.export(git.directory)
    subjects = git.run("log", "--reverse", "--format=%s").splitlines()
    first_three = subjects[:3]
    assert [s.split(":")[0] for s in first_three] == ["sim/r1/images", "sim/r2/images", "sim/r3/images"]
    assert all(": first snapshot " in s for s in first_three)
    changes = history.repository.history(HistoryFilter(region="r2"))
    assert len(changes) >= 2
    assert subjects[3] == f"sim/r2/images: {len(changes)} change(s), worst breaking"
    body = git.run("log", "-1", "--format=%b", "HEAD").splitlines()
    assert body[: len(changes)] == [f"{c.severity.value} {c.rule} {c.path}" for c in worst_first(changes)]
    assert git.trailer("HEAD", "Target") == "sim/r2/images"
    assert git.trailer("HEAD", "Snapshot-Sha256") == changes[0].to_sha256
    stat = git.run("log", "-1", "--stat", "--format=", "HEAD")
    assert "sim/r2/images.json |" in stat and "1 file changed" in stat


def test_each_commit_holds_every_targets_latest_document_and_changes_one_file(history: History, git: Git) -> None:
    _build_history(history)
    history.export(git.directory)
    trees = [git.run("ls-tree", "-r", "--name-only", c).split() for c in git.commits()]
    r1, r2, r3 = "sim/r1/images.json", "sim/r2/images.json", "sim/r3/images.json"
    assert trees == [[r1], [r1, r2], [r1, r2, r3], [r1, r2, r3]]
    changed = [git.run("diff-tree", "--root", "--no-commit-id", "-r", "--name-only", c).split() for c in git.commits()]
    assert changed == [[r1], [r2], [r3], [r2]]


def test_files_are_the_canonical_documents_pretty_printed(history: History, git: Git) -> None:
    _build_history(history)
    history.export(git.directory)
    for key in (R1, R2, R3):
        sha = history.repository.snapshots(history.repository.target_id(key) or 0)[-1].document_sha256
        document = history.repository.document(sha)
        assert document is not None
        shown = git.run("show", f"HEAD:{key.cloud}/{key.region}/{key.schema}.json")
        assert shown == _pretty(document.body) and shown.endswith("}\n") and '\n  "' in shown
        assert (git.directory / key.cloud / key.region / f"{key.schema}.json").read_text() == shown
    assert git.run("status", "--porcelain") == ""
    fsck = subprocess.run([git.binary, "-C", str(git.directory), "fsck", "--strict", "--no-progress"],
                          capture_output=True, text=True, timeout=60, env=git.env, check=False)  # fmt: skip
    assert fsck.returncode == 0 and "error" not in fsck.stdout + fsck.stderr, fsck.stderr


def test_git_diff_between_two_regions_shows_the_changed_property(history: History, git: Git) -> None:
    _build_history(history)
    history.export(git.directory)
    diff = git.run("diff", "HEAD:sim/r1/images.json", "HEAD:sim/r2/images.json")
    removed = [line for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    added = [line for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    assert any('"min_disk": {' in line for line in removed)
    assert any('"vhdx"' in line for line in added)
    no_index = git.run("diff", "--no-index", "sim/r1/images.json", "sim/r2/images.json", ok_codes=(1,))
    assert no_index.split("\n", 2)[2] == diff.split("\n", 2)[2]  # same hunks, only the index line differs
    patch = git.run("log", "-p", "-1", "HEAD", "--", "sim/r2/images.json")
    assert any(line.startswith("-") and '"min_disk"' in line for line in patch.splitlines())


# --- incremental runs -----------------------------------------------------------------------------


def test_a_second_run_adds_nothing_and_a_new_snapshot_adds_exactly_one_commit(history: History, git: Git) -> None:
    _build_history(history)
    assert history.export(git.directory)[0] == 0
    before = git.commits()
    assert history.export(git.directory) == (0, f"{git.directory}: up to date\n")
    assert git.commits() == before
    history.simulator.mutate("r3")
    history.poll(R1, R3)  # r1 unchanged: no snapshot, no commit
    newest = history.snapshot_ids()[-1]
    assert history.export(git.directory) == (0, f"{git.directory}: 1 commit(s) added, last snapshot {newest}\n")
    after = git.commits()
    assert after[:-1] == before and len(after) == len(before) + 1
    assert git.run("log", "-1", "--format=%P").strip() == before[-1]
    blame = git.run("blame", "-l", "sim/r3/images.json").splitlines()
    assert any(line.startswith(after[-1]) and '"vhdx"' in line for line in blame)
    assert any(line.startswith(before[2]) for line in blame)  # the untouched lines keep their first commit
    assert git.run("status", "--porcelain") == ""


@pytest.mark.slow
def test_a_snapshot_committed_late_with_an_earlier_first_seen_is_still_exported_once(
    history: History, git: Git
) -> None:
    history.poll(R1, R2)
    history.export(git.directory)
    history.simulator.mutate("r1")
    history.poll(R1)
    late = history.snapshot_ids()[-1]
    with history.parts.database.engine.begin() as conn:  # its poll started before the last export's newest snapshot
        earliest = min(s.first_seen for s in ExportStore(history.parts.database.engine).snapshots())
        conn.execute(update(Snapshot).where(Snapshot.id == late).values(first_seen=earliest - timedelta(seconds=5)))
    assert history.export(git.directory) == (0, f"{git.directory}: 1 commit(s) added, last snapshot {late}\n")
    assert history.export(git.directory) == (0, f"{git.directory}: up to date\n")
    history.simulator.mutate("r2")
    history.poll(R2)
    newest = max(history.snapshot_ids())
    assert history.export(git.directory) == (0, f"{git.directory}: 1 commit(s) added, last snapshot {newest}\n")
    ids = [int(git.trailer(c, "Snapshot-Id")) for c in git.commits()]
    assert len(ids) == len(set(ids)) == 4 and sorted(ids) == sorted(history.snapshot_ids())
    assert ids[2] == late  # appended after what was already exported, with its own (earlier) author date


def test_filters_export_only_the_matching_targets(sqlite_history: History, git: Git) -> None:
    _build_history(sqlite_history)
    assert sqlite_history.export(git.directory, "--region", "r2")[0] == 0
    assert git.run("ls-tree", "-r", "--name-only", "HEAD").split() == ["sim/r2/images.json"]
    assert len(git.commits()) == 2
    assert git.run("config", "--get", "schema-drift-monitor.scope").strip() == "*/r2/*"


# --- what the exporter refuses --------------------------------------------------------------------


def test_it_refuses_a_different_filter_on_an_exported_directory(
    sqlite_history: History, git: Git, capsys: pytest.CaptureFixture[str]
) -> None:
    _build_history(sqlite_history)
    sqlite_history.export(git.directory, "--cloud", "sim")
    capsys.readouterr()
    assert sqlite_history.export(git.directory)[0] == 2
    assert "holds the export of sim/*/*" in capsys.readouterr().err


def test_it_refuses_a_directory_that_is_not_a_git_repository(
    sqlite_history: History, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "notes"
    directory.mkdir()
    (directory / "todo.txt").write_text("keep me\n")
    assert sqlite_history.export(directory)[0] == 2
    assert "is not empty and not a git repository" in capsys.readouterr().err
    assert sorted(p.name for p in directory.iterdir()) == ["todo.txt"]


def test_it_refuses_a_git_repository_it_did_not_write(
    sqlite_history: History, git: Git, capsys: pytest.CaptureFixture[str]
) -> None:
    sqlite_history.poll(R1)
    git.directory.mkdir()
    git.run("init", "-q", "-b", "main")
    (git.directory / "README").write_text("mine\n")
    git.run("add", "README")
    git.run("-c", "user.name=someone", "-c", "user.email=someone@localhost", "commit", "-q", "-m", "mine")
    before = git.commits()
    assert sqlite_history.export(git.directory)[0] == 2
    assert "did not write" in capsys.readouterr().err
    assert git.commits() == before


def test_it_adopts_an_empty_git_init(sqlite_history: History, git: Git) -> None:
    sqlite_history.poll(R1)
    git.directory.mkdir()
    git.run("init", "-q", "-b", "master")
    assert sqlite_history.export(git.directory)[0] == 0
    assert git.run("rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    assert len(git.commits()) == 1


def test_it_refuses_uncommitted_changes_and_continues_once_they_are_gone(
    sqlite_history: History, git: Git, capsys: pytest.CaptureFixture[str]
) -> None:
    sqlite_history.poll(R1, R2)
    sqlite_history.export(git.directory)
    edited = git.directory / "sim" / "r1" / "images.json"
    edited.write_text(edited.read_text().replace('"type"', '"typo"', 1))
    sqlite_history.simulator.mutate("r2")
    sqlite_history.poll(R2)
    capsys.readouterr()
    assert sqlite_history.export(git.directory)[0] == 2
    assert "uncommitted changes in sim/r1/images.json" in capsys.readouterr().err
    assert len(git.commits()) == 2
    git.run("checkout", "--", ".")
    assert sqlite_history.export(git.directory)[0] == 0
    assert len(git.commits()) == 3


def test_it_refuses_an_untracked_file_where_it_would_write_a_document(
    sqlite_history: History, git: Git, capsys: pytest.CaptureFixture[str]
) -> None:
    sqlite_history.poll(R1)
    git.directory.mkdir()
    git.run("init", "-q")
    mine = git.directory / "sim" / "r1" / "images.json"
    mine.parent.mkdir(parents=True)
    mine.write_text("my own notes\n")
    (git.directory / "notes.txt").write_text("left alone\n")
    assert sqlite_history.export(git.directory)[0] == 2
    assert "untracked files where the export writes documents: sim/r1/images.json" in capsys.readouterr().err
    assert mine.read_text() == "my own notes\n"
    mine.unlink()
    assert sqlite_history.export(git.directory)[0] == 0
    assert (git.directory / "notes.txt").read_text() == "left alone\n"


# --- the store's queries --------------------------------------------------------------------------


def test_the_store_reads_pages_with_two_queries_each_never_one_per_snapshot(sqlite_history: History) -> None:
    _build_history(sqlite_history)
    engine = sqlite_history.parts.database.engine
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", count)
    try:
        whole = list(ExportStore(engine).snapshots())
        assert len(whole) == 4 and len(statements) == 2
        statements.clear()
        paged = list(ExportStore(engine).snapshots(page_size=3))
        assert len(statements) == 4  # two pages (3 + 1)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert paged == whole
    assert [s.first_seen for s in whole] == sorted(s.first_seen for s in whole)
    assert all(s.first_seen.tzinfo is UTC for s in whole)
    assert [c.rule for c in whole[-1].changes] == [
        c.rule for c in sqlite_history.repository.history(HistoryFilter(region="r2"))
    ]


# --- large exports: a pack and a published main per page ----------------------------------------


def test_a_long_export_is_packed_and_published_page_by_page(
    sqlite_history: History, git: Git, monkeypatch: pytest.MonkeyPatch
) -> None:
    _build_history(sqlite_history)
    monkeypatch.setattr(gitexport, "PAGE_COMMITS", 2)
    store = ExportStore(sqlite_history.parts.database.engine)

    def interrupted(after: ExportCursor | None) -> Iterator[ExportedSnapshot]:
        for n, snapshot in enumerate(store.snapshots(ExportScope(), after)):
            if n == 3:
                raise RuntimeError("the database went away")
            yield snapshot

    with pytest.raises(RuntimeError):
        export_git(git.directory, ExportScope(), interrupted)
    assert len(git.commits()) == 2  # the first page was published; the third commit was not
    result = export_git(git.directory, ExportScope(), partial(store.snapshots, ExportScope()))
    assert (result.added, result.last_snapshot_id) == (2, sqlite_history.snapshot_ids()[-1])
    assert [int(git.trailer(c, "Snapshot-Id")) for c in git.commits()] == sqlite_history.snapshot_ids()
    assert git.run("fsck", "--strict", "--no-progress") == "" and git.run("status", "--porcelain") == ""
    assert len(list((git.directory / ".git" / "objects" / "pack").glob("*.pack"))) >= 2
