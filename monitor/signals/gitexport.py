"""``export git``: the stored history as a git repository that the user's own tools can read.

One commit per snapshot, in time order, on branch ``main``; the tree of each commit holds every exported
target's latest document at that time as ``<cloud>/<region>/<schema>.json`` (canonical JSON, sorted keys,
indent 2, trailing newline), so a snapshot changes exactly one file. Author and committer are
``schema-drift-monitor``, and both dates are the snapshot's ``first_seen``: the same database exported
twice gives the same commit ids. The message names the target and each change with its severity and
ends in trailers; ``Export-Cursor`` is the export's own state, so an incremental run reads where it
stopped from the tip of ``main`` and adds only newer snapshots.

What the exporter refuses (:class:`ExportRefusedError`, nothing is changed):

* a non-empty directory that is not a git repository, and a repository with commits that this exporter
  did not write (no ``[schema-drift-monitor]`` section in ``.git/config``; an empty ``git init`` is
  adopted), or whose ``main`` tip it did not write (no ``Export-Cursor`` trailer);
* different filters than the ones the directory was exported with (stored as ``schema-drift-monitor.scope``):
  the cursor covers what those filters selected, so a narrower or wider run would silently skip history;
* uncommitted changes to tracked files (staged or not), an untracked file of the shape the export writes
  (``a/b/c.json``), and ``HEAD`` on another branch than ``main``: the export moves ``main`` and checks its
  tree out. Other untracked files are left alone.

dulwich does the git work (objects, packs, refs, checkout); this is the only module that imports it.
Objects are written as one pack per ``PAGE_COMMITS`` commits, after which ``main`` moves (compare-and-swap:
a concurrent export into the same directory fails instead of losing commits) and is checked out, so an
interrupted export keeps what it wrote and the next run continues from there.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from dulwich import porcelain
from dulwich.errors import NotGitRepository
from dulwich.object_store import MemoryObjectStore, OverlayObjectStore, commit_tree_changes
from dulwich.objects import Blob, Commit, ObjectID, Tree
from dulwich.refs import Ref
from dulwich.repo import Repo
from dulwich.trailers import parse_trailers

from monitor.domain import Severity, worst_first
from monitor.store.records import ExportCursor, ExportedChange, ExportedSnapshot, ExportScope

log = logging.getLogger(__name__)

IDENTITY: Final = b"schema-drift-monitor <schema-drift-monitor@localhost>"
BRANCH: Final = Ref(b"refs/heads/main")
HEAD: Final = Ref(b"HEAD")
SECTION: Final = (b"schema-drift-monitor",)
PAGE_COMMITS: Final = 500
FILE_MODE: Final = 0o100644
_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f]")
_EXPORT_PATH_RE: Final = re.compile(r"^[^/]+/[^/]+/[^/]+\.json$")  # the shape of every path the export writes

SnapshotSource = Callable[[ExportCursor | None], Iterable[ExportedSnapshot]]
"""Returns the snapshots to export after a cursor (all of them for ``None``), in time order."""


class ExportError(Exception):
    """The export could not be written (exit 1); commits already on ``main`` stay valid."""


class ExportRefusedError(ExportError):
    """The directory is not this exporter's to write (exit 2); nothing was changed."""


@dataclass(frozen=True, slots=True)
class ExportResult:
    directory: Path
    added: int  # commits added by this run
    last_snapshot_id: int | None  # the snapshot of the last commit added; None when nothing was added


def export_git(directory: Path, scope: ExportScope, source: SnapshotSource) -> ExportResult:
    """Add a commit to ``directory``'s ``main`` for each snapshot ``source`` returns after the stored cursor.

    Creates the repository when ``directory`` is missing or empty. Raises ExportRefusedError (see the
    module docstring) or ExportError when the repository cannot be written.
    """
    try:
        with closing(_open(directory, scope)) as repo:
            writer = _HistoryWriter(repo)
            for snapshot in source(writer.cursor):
                writer.add(snapshot)
            writer.flush()
    except OSError as exc:
        raise ExportError(f"cannot write {directory}: {exc.strerror or exc}") from None
    return ExportResult(directory, writer.added, writer.last_snapshot_id)


# --- the history ---------------------------------------------------------------------------------


class _HistoryWriter:
    """Appends commits to ``main``, packing and publishing them every ``PAGE_COMMITS`` commits."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self.tip: ObjectID | None = repo.refs[BRANCH] if BRANCH in repo.refs else None  # noqa: SIM401
        self.published = self.tip
        tip_commit = self._commit(self.tip) if self.tip else None
        self.cursor = _read_cursor(tip_commit) if tip_commit else None
        self.tree: ObjectID | Tree = tip_commit.tree if tip_commit else Tree()
        self.pending = MemoryObjectStore()
        self.objects = OverlayObjectStore([self.pending, repo.object_store], add_store=self.pending)
        self.added = 0
        self.last_snapshot_id: int | None = None

    def _commit(self, sha: ObjectID) -> Commit:
        commit = self.repo[sha]
        if not isinstance(commit, Commit):
            raise ExportRefusedError(f"{self.repo.path}: main does not point at a commit")
        return commit

    def add(self, snapshot: ExportedSnapshot) -> None:
        """Write ``snapshot``'s document and a commit of it on top of the current tip."""
        path = document_path(snapshot).encode()
        first = not self._tracked(path)
        blob = Blob.from_string(document_bytes(snapshot.body))
        self.objects.add_object(blob)
        self.tree = commit_tree_changes(self.objects, self.tree, [(path, FILE_MODE, blob.id)])
        self.cursor = self.cursor.advance(snapshot) if self.cursor else ExportCursor.at(snapshot)
        commit = _new_commit(self.tree, self.tip, snapshot, commit_message(snapshot, first, self.cursor))
        self.objects.add_object(commit)
        self.tip, self.added, self.last_snapshot_id = commit.id, self.added + 1, snapshot.id
        labels = {"cloud": snapshot.target.cloud, "region": snapshot.target.region, "schema": snapshot.target.schema}
        log.debug("exported snapshot %d as commit %s", snapshot.id, commit.id.decode()[:12], extra=labels)
        if self.added % PAGE_COMMITS == 0:
            self.flush()
            log.info("%s: %d commit(s) added so far, up to snapshot %d", self.repo.path, self.added, snapshot.id)

    def _tracked(self, path: bytes) -> bool:
        tree = self.tree if isinstance(self.tree, Tree) else self.objects[self.tree]
        assert isinstance(tree, Tree)
        try:
            tree.lookup_path(self.objects.__getitem__, path)
        except KeyError:
            return False
        return True

    def flush(self) -> None:
        """Pack the pending objects into the repository, move ``main`` to the tip and check it out.

        The worktree follows ``main`` page by page, so an export that fails midway leaves a clean
        checkout of what it published (only a process killed between the two steps leaves the older
        files, which the next run reports as uncommitted changes).

        Raises ExportError when ``main`` moved meanwhile (another export into the same directory).
        """
        if self.tip is None or self.tip == self.published:
            return
        objects = [(self.pending[sha], None) for sha in self.pending]
        self.repo.object_store.add_objects(objects)
        message = b"schema-drift-monitor export"
        if self.published is None:
            moved = self.repo.refs.add_if_new(BRANCH, self.tip, message=message)
        else:
            moved = self.repo.refs.set_if_equals(BRANCH, self.published, self.tip, message=message)
        if not moved:
            raise ExportError(f"{self.repo.path}: main was changed by another process during the export")
        porcelain.reset(self.repo, "hard", self.tip)
        self.published, self.pending = self.tip, MemoryObjectStore()
        self.objects = OverlayObjectStore([self.pending, self.repo.object_store], add_store=self.pending)


def _new_commit(tree: ObjectID | Tree, parent: ObjectID | None, snapshot: ExportedSnapshot, message: bytes) -> Commit:
    commit = Commit()
    commit.tree = tree.id if isinstance(tree, Tree) else tree
    commit.parents = [parent] if parent else []
    commit.author = commit.committer = IDENTITY
    when = int(snapshot.first_seen.timestamp())
    commit.author_time = commit.commit_time = when
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = message
    return commit


# --- file content and commit messages ------------------------------------------------------------


def document_path(snapshot: ExportedSnapshot) -> str:
    """``<cloud>/<region>/<schema>.json``; raises ExportError for a name that is no safe path segment."""
    key = snapshot.target
    for name in (key.cloud, key.region, key.schema):
        if not _NAME_RE.match(name):
            raise ExportError(f"target {key}: {name!r} cannot be a file name in the export")
    return f"{key.cloud}/{key.region}/{key.schema}.json"


def document_bytes(canonical: str) -> bytes:
    """The file content of a canonical document: sorted keys, indent 2, a trailing newline, UTF-8."""
    return (json.dumps(json.loads(canonical), sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def commit_message(snapshot: ExportedSnapshot, first: bool, cursor: ExportCursor) -> bytes:
    """Subject naming the target, one line per change (worst first), then the trailers (``Export-Cursor`` last)."""
    lines = [_subject(snapshot, first), ""]
    if snapshot.changes:
        lines += [_change_line(change) for change in worst_first(snapshot.changes)] + [""]
    lines += [
        f"Target: {snapshot.target}",
        f"Snapshot-Id: {snapshot.id}",
        f"Snapshot-Sha256: {snapshot.sha256}",
        f"First-Seen: {snapshot.first_seen.isoformat()}",
        f"Export-Cursor: {cursor.first_seen.isoformat()} {cursor.snapshot_id} {cursor.max_id}",
    ]
    return ("\n".join(lines) + "\n").encode()


def _subject(snapshot: ExportedSnapshot, first: bool) -> str:
    if first:
        return f"{snapshot.target}: first snapshot {snapshot.sha256[:12]}"
    if not snapshot.changes:
        return f"{snapshot.target}: new document {snapshot.sha256[:12]}, no classified change"
    worst = Severity.worst(*(change.severity for change in snapshot.changes))
    return f"{snapshot.target}: {len(snapshot.changes)} change(s), worst {worst.value}"


def _change_line(change: ExportedChange) -> str:
    flags = "".join(f" [{flag}]" for flag in ("ignored", "expected") if getattr(change, flag))
    # a property name may hold any character; a newline must not end the line (or start a trailer)
    path = _CONTROL_RE.sub(lambda match: f"\\u{ord(match.group()):04x}", change.path)
    return f"{change.severity.value} {change.rule} {path}{flags}"


def _read_cursor(commit: Commit) -> ExportCursor:
    """The ``Export-Cursor`` trailer of a commit this exporter wrote; raises ExportRefusedError otherwise."""
    _, trailers = parse_trailers(commit.message)
    values = [t.value for t in trailers if t.key == "Export-Cursor"]
    try:
        first_seen, snapshot_id, max_id = values[-1].split()
        return ExportCursor(datetime.fromisoformat(first_seen), int(snapshot_id), int(max_id))
    except (IndexError, ValueError):
        raise ExportRefusedError(
            f"the tip of main ({commit.id.decode()[:12]}) was not written by schema-drift-monitor "
            "(no Export-Cursor trailer); move main back to the last export commit"
        ) from None


# --- opening and checking the directory ----------------------------------------------------------


def _open(directory: Path, scope: ExportScope) -> Repo:
    """The repository to export into, created when ``directory`` is missing or empty; see the module docstring."""
    if not directory.exists() or (directory.is_dir() and not any(directory.iterdir())):
        directory.mkdir(parents=True, exist_ok=True)
        repo = Repo.init(str(directory), default_branch=b"main")
        _claim(repo, scope)
        return repo
    try:
        repo = Repo(str(directory))
    except NotGitRepository:
        raise ExportRefusedError(f"{directory} is not empty and not a git repository") from None
    try:
        _check_ours(repo, directory, scope)
    except BaseException:
        repo.close()
        raise
    return repo


def _check_ours(repo: Repo, directory: Path, scope: ExportScope) -> None:
    if repo.bare:
        raise ExportRefusedError(f"{directory} is a bare repository; export into a new directory")
    stored = _stored_scope(repo)
    if stored is None:
        if any(ref != HEAD for ref in repo.refs.allkeys()):
            raise ExportRefusedError(
                f"{directory} is a git repository that schema-drift-monitor did not write; export into a new directory"
            )
        _claim(repo, scope)  # an empty `git init`: nothing of anyone's to lose
    elif stored != str(scope):
        raise ExportRefusedError(
            f"{directory} holds the export of {stored} (cloud/region/schema, * for all); give the same "
            f"--cloud/--region/--schema or export {scope} into another directory"
        )
    if repo.refs.read_ref(HEAD) != b"ref: " + BRANCH:
        raise ExportRefusedError(f"{directory}: HEAD is not on main; `git -C {directory} checkout main` first")
    _check_clean(repo, directory)


def _check_clean(repo: Repo, directory: Path) -> None:
    """Refuse staged or unstaged changes, and untracked files where an export could write one."""
    status = porcelain.status(repo, untracked_files="all")
    changed: list[bytes | str] = [path for paths in status.staged.values() for path in paths]
    changed += status.unstaged
    if changed:
        raise ExportRefusedError(
            f"{directory} has uncommitted changes in {_names(changed)}; commit, stash or "
            f"`git -C {directory} reset --hard` them, then export again"
        )
    in_the_way = [path for path in status.untracked if _EXPORT_PATH_RE.match(os.fsdecode(path))]
    if in_the_way:
        raise ExportRefusedError(
            f"{directory} has untracked files where the export writes documents: {_names(in_the_way)}; "
            "move them away, then export again"
        )


def _names(paths: Sequence[bytes | str]) -> str:
    names = sorted({p.decode(errors="replace") if isinstance(p, bytes) else p for p in paths})
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _claim(repo: Repo, scope: ExportScope) -> None:
    """Mark the repository as this exporter's, for ``scope``, and put HEAD on ``main``."""
    config = repo.get_config()
    config.set(SECTION, b"scope", str(scope).encode())
    config.write_to_path()
    repo.refs.set_symbolic_ref(HEAD, BRANCH)


def _stored_scope(repo: Repo) -> str | None:
    try:
        return repo.get_config().get(SECTION, b"scope").decode()
    except KeyError:
        return None
