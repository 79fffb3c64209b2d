"""Command line: argument parsing, printing and exit codes — nothing else.

Exit codes: 0 success; 1 a poll failed or the monitor could not start (database, port); 2 usage or
configuration error; 3 (``check --fail-on``) a change at or above the given severity was found.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from monitor import __version__
from monitor.config import Config, ConfigError, load_config, parse_duration
from monitor.domain import ABSENT, Change, PollResult, Severity, TargetKey
from monitor.store.repository import ChangeRecord, HistoryFilter, Repository, StoreError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CHANGED = 0, 1, 2, 3
DEFAULT_CONFIG = "config.yaml"

log = logging.getLogger("monitor")

_COLORS = {
    Severity.BREAKING: "\033[1;31m",
    Severity.WARNING: "\033[33m",
    Severity.INFO: "\033[36m",
    Severity.COSMETIC: "\033[2m",
}
_RESET = "\033[0m"


class UsageError(Exception):
    """Bad arguments that argparse cannot catch (exit code 2)."""


# --- parser ----------------------------------------------------------------------------------------


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", default=DEFAULT_CONFIG, metavar="FILE",
        help=f"YAML configuration file (default: {DEFAULT_CONFIG})",
    )  # fmt: skip


def _add_target_filters(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--cloud", required=required, help="cloud name from the config")
    parser.add_argument("--region", required=required, help="region name from the config")
    parser.add_argument("--schema", required=required, help="schema name, e.g. images")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="schema-drift-monitor",
        description="Watch cloud API schema endpoints in every region; record and export every change.",
        epilog="Exit codes: 0 ok, 1 poll failed or cannot start, 2 usage/config error, 3 --fail-on matched.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default: INFO"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon: poll on schedule, serve /metrics, /healthz, /readyz")
    _add_config(run)

    check = sub.add_parser("check", help="poll every target once and exit (for cron and CI)")
    _add_config(check)
    check.add_argument("--json", action="store_true", help="print the results as JSON")
    check.add_argument(
        "--fail-on", choices=["breaking", "warning", "any"],
        help="exit 3 when a change of this severity or worse was found (any: any change)",
    )  # fmt: skip

    history = sub.add_parser("history", help="list recorded changes, oldest first")
    _add_config(history)
    _add_target_filters(history, required=False)
    history.add_argument("--severity", choices=[s.value for s in Severity], help="this severity or worse")
    history.add_argument("--since", help="only changes since a duration ago (24h, 7d) or an ISO date/time")
    history.add_argument("--limit", type=int, default=1000, help="at most this many, the newest (default 1000)")
    history.add_argument("--json", action="store_true", help="print a JSON list of change objects")

    snapshots = sub.add_parser("snapshots", help="list a target's stored snapshots (ids for diff)")
    _add_config(snapshots)
    _add_target_filters(snapshots, required=True)
    snapshots.add_argument("--json", action="store_true", help="print JSON")

    diff = sub.add_parser("diff", help="show the changes between two stored snapshots of a target")
    _add_config(diff)
    _add_target_filters(diff, required=True)
    diff.add_argument("--from", dest="from_id", type=int, help="snapshot id (default: the one before --to)")
    diff.add_argument("--to", dest="to_id", type=int, help="snapshot id (default: the latest)")
    diff.add_argument("--json", action="store_true", help="print a JSON list of changes")
    diff.add_argument("--color", choices=["auto", "always", "never"], default="auto", help="default: auto")

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = db_sub.add_parser("upgrade", help="apply pending schema migrations")
    _add_config(upgrade)

    cfg = sub.add_parser("config", help="configuration tools")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    cfg_check = cfg_sub.add_parser("check", help="validate the configuration and list the targets; no polling")
    _add_config(cfg_check)

    demo = sub.add_parser("demo", help="run the monitor against built-in simulated regions (no credentials)")
    demo.add_argument("--listen", default="127.0.0.1:9478", help="metrics address (default 127.0.0.1:9478)")
    demo.add_argument(
        "--database",
        default="sqlite:///./data/demo.db",
        help="database URL (default sqlite:///./data/demo.db, emptied at each demo start)",
    )
    demo.add_argument("--interval", default="5s", help="poll interval (default 5s)")
    demo.add_argument("--change-after", default="20s", help="when to change one region's schema (default 20s)")
    demo.add_argument("--duration", default="0", help="stop after this long (default 0: until Ctrl-C)")
    return parser


# --- commands --------------------------------------------------------------------------------------


def _load(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def _repository(config: Config) -> Repository:
    from monitor.app import open_database

    return Repository(open_database(config))


def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    from monitor.app import run_daemon

    return asyncio.run(run_daemon(_load(args)))


def cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    from monitor.app import check_once

    results = asyncio.run(check_once(_load(args)))
    if args.json:
        json.dump([_result_json(r) for r in results], out, indent=2)
        out.write("\n")
    else:
        for result in results:
            out.write(_result_line(result) + "\n")
    return _check_exit_code(results, args.fail_on)


def _check_exit_code(results: Sequence[PollResult], fail_on: str | None) -> int:
    if fail_on is not None:
        threshold = Severity.COSMETIC if fail_on == "any" else Severity(fail_on)
        if any(c.severity.rank >= threshold.rank for r in results for c in r.changes):
            return EXIT_CHANGED
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED


def cmd_history(args: argparse.Namespace, out: TextIO) -> int:
    where = HistoryFilter(
        cloud=args.cloud,
        region=args.region,
        schema=args.schema,
        min_severity=Severity(args.severity) if args.severity else None,
        since=_parse_since(args.since) if args.since else None,
        limit=args.limit,
    )
    records = _repository(_load(args)).history(where)
    if args.json:
        json.dump([r.as_json() for r in records], out, indent=2, ensure_ascii=False)
        out.write("\n")
    else:
        color = out.isatty()
        for record in records:
            out.write(_history_line(record, color) + "\n")
        if not records:
            out.write("no changes recorded\n")
    return EXIT_OK


def cmd_snapshots(args: argparse.Namespace, out: TextIO) -> int:
    repository = _repository(_load(args))
    key = TargetKey(args.cloud, args.region, args.schema)
    rows = repository.snapshots(_target_id(repository, key))
    if args.json:
        json.dump(
            [
                {"id": r.id, "sha256": r.document_sha256, "first_seen": r.first_seen.isoformat(),
                 "last_seen": r.last_seen.isoformat()}
                for r in rows
            ],
            out, indent=2,
        )  # fmt: skip
        out.write("\n")
    else:
        for r in rows:
            seen = f"{r.first_seen:%Y-%m-%d %H:%M:%S} → {r.last_seen:%Y-%m-%d %H:%M:%S}"
            out.write(f"{r.id:>6}  {r.document_sha256[:12]}  {seen}\n")
    return EXIT_OK


def cmd_diff(args: argparse.Namespace, out: TextIO) -> int:
    from monitor.diffing import classify

    repository = _repository(_load(args))
    key = TargetKey(args.cloud, args.region, args.schema)
    snapshots = {s.id: s for s in repository.snapshots(_target_id(repository, key))}
    from_id, to_id = _pick_snapshots(sorted(snapshots), args.from_id, args.to_id)
    old = repository.document(snapshots[from_id].document_sha256)
    new = repository.document(snapshots[to_id].document_sha256)
    assert old is not None and new is not None
    changes = classify(json.loads(old.body), json.loads(new.body))
    if args.json:
        json.dump([_change_json(c) for c in changes], out, indent=2, ensure_ascii=False)
        out.write("\n")
        return EXIT_OK
    color = args.color == "always" or (args.color == "auto" and out.isatty())
    out.write(f"{key}: snapshot {from_id} → {to_id}: {len(changes)} change(s)\n")
    for change in changes:
        out.write(_change_line(change, color) + "\n")
    return EXIT_OK


def _target_id(repository: Repository, key: TargetKey) -> int:
    target_id = repository.target_id(key)
    if target_id is None:
        raise UsageError(f"no target {key} in the database (has the monitor polled it yet?)")
    return target_id


def _pick_snapshots(ids: list[int], from_id: int | None, to_id: int | None) -> tuple[int, int]:
    """Resolve --from/--to against a target's snapshot ids; raises UsageError."""
    if len(ids) < 2 and (from_id is None or to_id is None):
        raise UsageError(f"the target has {len(ids)} snapshot(s); a diff needs two")
    to_id = ids[-1] if to_id is None else to_id
    if to_id not in ids:
        raise UsageError(f"snapshot {to_id} does not belong to this target; see `snapshots`")
    if from_id is None:
        earlier = [i for i in ids if i < to_id]
        if not earlier:
            raise UsageError(f"snapshot {to_id} is the target's first; give --from")
        from_id = earlier[-1]
    if from_id not in ids:
        raise UsageError(f"snapshot {from_id} does not belong to this target; see `snapshots`")
    return from_id, to_id


def cmd_db_upgrade(args: argparse.Namespace, out: TextIO) -> int:
    from monitor.app import StartupError
    from monitor.store.engine import current_revision, head_revision, make_engine, safe_url, upgrade

    config = _load(args)
    url = config.database.url.get_secret_value()
    engine = make_engine(url)
    try:
        before = current_revision(engine)
        upgrade(engine)
    except Exception as exc:
        raise StartupError(f"cannot upgrade {safe_url(url)}: {type(exc).__name__}") from None
    finally:
        engine.dispose()
    out.write(f"{safe_url(url)}: schema revision {before or '(empty)'} → {head_revision()}\n")
    return EXIT_OK


def cmd_config_check(args: argparse.Namespace, out: TextIO) -> int:
    config = _load(args)
    specs = config.targets()
    out.write(f"{args.config}: OK — {len(config.clouds)} cloud(s), {len(specs)} target(s)\n")
    for spec in specs:
        out.write(f"  {spec.key}  {spec.url}  every {spec.interval:g}s\n")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    from monitor.demo import run_demo

    return run_demo(
        listen=args.listen,
        database=args.database,
        interval=parse_duration(args.interval),
        change_after=parse_duration(args.change_after),
        duration=parse_duration(args.duration),
        out=out,
    )


COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO], int]] = {
    "run": cmd_run,
    "check": cmd_check,
    "history": cmd_history,
    "snapshots": cmd_snapshots,
    "diff": cmd_diff,
    "db": cmd_db_upgrade,
    "config": cmd_config_check,
    "demo": cmd_demo,
}


# --- rendering -------------------------------------------------------------------------------------


def _parse_since(value: str) -> datetime:
    """A point in time from ``24h``/``7d`` (ago) or an ISO date/time; raises UsageError."""
    try:
        return datetime.now(UTC) - timedelta(seconds=parse_duration(value))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--since: expected a duration like 24h or an ISO date, got {value!r}") from None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _short_json(value: Any, width: int = 60) -> str:
    if value is ABSENT:
        return "∅"
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= width else text[: width - 1] + "…"


def _paint(text: str, severity: Severity, color: bool) -> str:
    return f"{_COLORS[severity]}{text}{_RESET}" if color else text


def _change_line(change: Change, color: bool) -> str:
    label = _paint(f"{change.severity.value:<9}", change.severity, color)
    return f"  {label} {change.rule:<30} {change.path}  {_short_json(change.old)} → {_short_json(change.new)}"


def _history_line(record: ChangeRecord, color: bool) -> str:
    label = _paint(f"{record.severity.value:<9}", record.severity, color)
    return (
        f"{record.detected_at:%Y-%m-%d %H:%M:%S}  {record.target}  {label} {record.rule:<30} {record.path}  "
        f"{_short_json(record.old, 40)} → {_short_json(record.new, 40)}"
    )


def _change_json(change: Change) -> dict[str, Any]:
    return {
        "path": change.path,
        "rule": change.rule,
        "severity": change.severity.value,
        "old": None if change.old is ABSENT else change.old,
        "new": None if change.new is ABSENT else change.new,
        "old_present": change.old is not ABSENT,
        "new_present": change.new is not ABSENT,
    }


def _result_json(result: PollResult) -> dict[str, Any]:
    return {
        "cloud": result.target.cloud,
        "region": result.target.region,
        "schema": result.target.schema,
        "ok": result.ok,
        "started_at": result.started_at.isoformat(),
        "duration_seconds": round(result.duration, 4),
        "reason": result.reason.value if result.reason else None,
        "http_status": result.http_status,
        "error": result.error,
        "document_sha256": result.document_sha,
        "first_snapshot": result.first_snapshot,
        "changes": [_change_json(c) for c in result.changes],
    }


def _result_line(result: PollResult) -> str:
    if not result.ok:
        return f"FAIL  {result.target}  {result.reason}: {result.error}"
    if result.first_snapshot:
        return f"OK    {result.target}  first snapshot {(result.document_sha or '')[:12]}"
    if result.changes:
        worst = Severity.worst(*(c.severity for c in result.changes))
        return f"CHANGED {result.target}  {len(result.changes)} change(s), worst {worst.value}"
    return f"OK    {result.target}  unchanged"


# --- entry point -----------------------------------------------------------------------------------


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "httpcore", "apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit code (see module docstring)."""
    from monitor.app import StartupError

    args = build_parser().parse_args(argv)
    _setup_logging(args.log_level)
    try:
        return COMMANDS[args.command](args, out or sys.stdout)
    except ConfigError as exc:
        print(f"schema-drift-monitor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"schema-drift-monitor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (StartupError, StoreError) as exc:
        print(f"schema-drift-monitor: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head` and closed early
        sys.stderr.close()
        return EXIT_OK
