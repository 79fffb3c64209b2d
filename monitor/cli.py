"""Command line: argument parsing, printing and exit codes — nothing else.

Exit codes: 0 success; 1 a poll failed or the monitor could not start (database, port); 2 usage or
configuration error; 3 (``check --fail-on``) a change at or above the given severity was found.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TextIO

from monitor import __version__
from monitor.config import NO_CLOUDS_YAML, CloudsYamlCloud, Config, ConfigError, load_config
from monitor.config.types import parse_duration
from monitor.domain import PollResult, Severity, TargetKey, change_json
from monitor.logs import FORMATS as LOG_FORMATS
from monitor.logs import setup_logging
from monitor.read import reports
from monitor.read.matrix import comparison_json, matrix_markdown, matrix_text
from monitor.read.model import Conflict, ReadModel, SurfaceView, parse_since
from monitor.read.reports import change_line, paint, short_json
from monitor.store.database import Database
from monitor.store.records import ChangeRecord, HistoryFilter, StoreError, Window

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CHANGED = 0, 1, 2, 3
DEFAULT_CONFIG = "config.yaml"

log = logging.getLogger("monitor")


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


def _add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=reports.FORMATS, default="text", help="output format (default: text)")
    parser.add_argument("--json", action="store_true", help="same as --format json")
    parser.add_argument("--color", choices=["auto", "always", "never"], default="auto", help="default: auto")


def _whoami() -> str:
    return os.environ.get("USER") or os.environ.get("LOGNAME") or "cli"


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
    parser.add_argument(
        "--log-format", default="text", choices=LOG_FORMATS,
        help="text lines, or one JSON object per line (time, level, logger, message, cloud/region/schema)",
    )  # fmt: skip
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
    diff.add_argument("--baseline", action="store_true", help="compare the approved baseline with the current document")
    diff.add_argument("--against-region", metavar="REGION", help="compare with another region's current document")
    diff.add_argument("--against-cloud", metavar="CLOUD", help="... of another cloud (with the same schema name)")
    _add_output(diff)

    compare = sub.add_parser("compare", help="group a cloud's regions by the document they serve; show deviations")
    _add_config(compare)
    compare.add_argument("--cloud", required=True, help="cloud name from the config")
    compare.add_argument("--schema", required=True, help="schema name, e.g. images")
    compare.add_argument("--reference", help="'majority' or a region (default: the cloud's `reference` setting)")
    compare.add_argument("--with-cloud", metavar="CLOUD", help="also compare the regions of this cloud")
    _add_output(compare)

    surface = sub.add_parser("surface", help="the API surface of a cloud: versions and microversions per region")
    _add_config(surface)
    surface.add_argument("--cloud", required=True, help="cloud name from the config")
    surface.add_argument("--json", action="store_true", help="print JSON")

    drift = sub.add_parser("drift", help="changes between a target's approved baseline and now, with fingerprints")
    _add_config(drift)
    _add_target_filters(drift, required=True)
    drift.add_argument("--json", action="store_true", help="print JSON")
    drift.add_argument("--color", choices=["auto", "always", "never"], default="auto", help="default: auto")

    ack = sub.add_parser("ack", help="acknowledge drift: single changes by fingerprint, or approve the whole document")
    _add_config(ack)
    _add_target_filters(ack, required=True)
    what = ack.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--fingerprint", action="append", default=[], help="a fingerprint (or 8+ char prefix) from `drift`"
    )
    what.add_argument("--approve", action="store_true", help="make the current document the approved baseline")
    ack.add_argument("--comment", required=True, help="why (stored with who and when)")
    ack.add_argument("--by", default=_whoami(), help="who acknowledges (default: $USER)")
    ack.add_argument("--expires", help="fingerprint acks only: lapse after this long (e.g. 7d)")

    expect = sub.add_parser("expect", help="declare an expected-change window: changes are recorded but do not page")
    _add_config(expect)
    expect.add_argument("--cloud", required=True, help="cloud name from the config")
    expect.add_argument("--schema", help="only this schema (default: all)")
    expect.add_argument("--for", dest="duration", required=True, help="window length, e.g. 2h")
    expect.add_argument("--start", help="ISO date/time (default: now)")
    expect.add_argument("--comment", required=True, help="why, e.g. the change ticket")
    expect.add_argument("--by", default=_whoami(), help="who (default: $USER)")

    export = sub.add_parser("export", help="write the stored history in another form")
    export_sub = export.add_subparsers(dest="export_command", required=True, metavar="FORMAT")
    git = export_sub.add_parser(
        "git", help="a git repository: one commit per snapshot, one <cloud>/<region>/<schema>.json per target"
    )
    git.add_argument("directory", metavar="DIR", help="created when missing or empty; later runs add new snapshots")
    _add_config(git)
    _add_target_filters(git, required=False)

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = db_sub.add_parser("upgrade", help="apply pending schema migrations")
    _add_config(upgrade)

    cfg = sub.add_parser("config", help="configuration tools")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    cfg_check = cfg_sub.add_parser("check", help="validate the configuration and list the targets; no polling")
    _add_config(cfg_check)
    cfg_check.add_argument(
        "--discover", action="store_true", help="also ask the identity service for regions and catalogs; list them"
    )

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
    return load_config(args.config, clouds_yaml=_read_clouds_yaml)


def _read_clouds_yaml(name: str | None) -> CloudsYamlCloud:
    """clouds.yaml through openstacksdk, imported only for a config that needs it (it is an optional extra)."""
    try:
        from monitor.auth.clouds import resolve
    except ImportError:
        raise ValueError(NO_CLOUDS_YAML) from None
    return resolve(name)


def _database(config: Config) -> Database:
    from monitor.app import open_database

    return open_database(config)


def _read(config: Config) -> ReadModel:
    return ReadModel(config, _database(config))


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
        if any(c.severity.rank >= threshold.rank for r in results for c in r.counted_changes):
            return EXIT_CHANGED
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED


def cmd_history(args: argparse.Namespace, out: TextIO) -> int:
    where = HistoryFilter(
        cloud=args.cloud,
        region=args.region,
        schema=args.schema,
        min_severity=Severity(args.severity) if args.severity else None,
        since=parse_since(args.since) if args.since else None,
        limit=args.limit,
    )
    records = _read(_load(args)).history(where)
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
    rows = _read(_load(args)).snapshots(TargetKey(args.cloud, args.region, args.schema))
    if args.json:
        json.dump([r.as_json() for r in rows], out, indent=2)
        out.write("\n")
    else:
        for r in rows:
            seen = f"{r.first_seen:%Y-%m-%d %H:%M:%S} → {r.last_seen:%Y-%m-%d %H:%M:%S}"
            out.write(f"{r.id:>6}  {r.document_sha256[:12]}  {seen}\n")
    return EXIT_OK


def cmd_diff(args: argparse.Namespace, out: TextIO) -> int:
    read = _read(_load(args))
    key = TargetKey(args.cloud, args.region, args.schema)
    if args.baseline:
        comparison = read.baseline_diff(key)
    elif args.against_region or args.against_cloud:
        other = TargetKey(args.against_cloud or args.cloud, args.against_region or args.region, args.schema)
        comparison = read.region_diff(key, other)
    else:
        comparison = read.snapshot_diff(key, args.from_id, args.to_id)
    out.write(reports.render(_format(args), [comparison], color=_color(args, out)))
    return EXIT_OK


def _format(args: argparse.Namespace) -> str:
    return "json" if getattr(args, "json", False) else str(args.format)


def _color(args: argparse.Namespace, out: TextIO) -> bool:
    return bool(args.color == "always" or (args.color == "auto" and out.isatty()))


def cmd_compare(args: argparse.Namespace, out: TextIO) -> int:
    view = _read(_load(args)).compare(args.cloud, args.schema, args.reference, args.with_cloud)
    deviations = [comparison for _, comparison in view.deviations]
    fmt = _format(args)
    if fmt == "json":
        body = {**comparison_json(view.comparison, view.labels),
                "deviations": json.loads(reports.render_json(deviations) or "[]")}  # fmt: skip
        out.write(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
    elif fmt == "markdown":
        out.write(matrix_markdown(view.comparison, view.labels) + "\n" + reports.render_markdown(deviations))
    else:
        out.write(matrix_text(view.comparison, view.labels) + "\n")
        out.write(reports.render(fmt, deviations, color=_color(args, out)))
    return EXIT_OK


def cmd_surface(args: argparse.Namespace, out: TextIO) -> int:
    view = _read(_load(args)).surface(args.cloud)
    if args.json:
        out.write(json.dumps(view.as_json(), indent=2) + "\n")
    else:
        out.write(surface_text(view))
    return EXIT_OK


def surface_text(view: SurfaceView) -> str:
    """The region-by-version matrix (``*``: off the majority, ``-``: no microversions, blank: missing), then the
    extensions some regions lack and the services some regions lack."""
    header = ["service", "version", *view.regions]
    rows = [header]
    for row in view.rows:
        cells = [("" if (cell := row.cells[r]) is None else cell.range) + ("*" if r in row.deviating else "")
                 for r in view.regions]  # fmt: skip
        rows.append([row.service, row.version, *cells])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    if not view.rows:
        lines.append(f"no versions documents of {view.cloud} recorded yet")
    for service, gaps in view.extensions.items():
        for alias, lacking in gaps.items():
            lines.append(f"{service} extension {alias}: missing in {', '.join(lacking)}")
    for region, services in view.missing_services.items():
        lines.append(f"{region}: no {', '.join(services)} (other regions have it)")
    lines.append("* differs from the majority of regions (or is missing there)")
    return "\n".join(lines) + "\n"


def cmd_drift(args: argparse.Namespace, out: TextIO) -> int:
    key = TargetKey(args.cloud, args.region, args.schema)
    items = _read(_load(args)).drift(key)
    if args.json:
        rows = [{"fingerprint": i.fingerprint, "acknowledged": i.acknowledged, **change_json(i.change)} for i in items]
        out.write(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
        return EXIT_OK
    pending = [i for i in items if not i.acknowledged]
    out.write(f"{key}: {len(items)} change(s) from the baseline, {len(pending)} unacknowledged\n")
    for item in items:
        mark = "acked" if item.acknowledged else "     "
        out.write(f"  {item.fingerprint[:16]}  {mark} {change_line(item.change, _color(args, out)).strip()}\n")
    return EXIT_OK


def cmd_ack(args: argparse.Namespace, out: TextIO) -> int:
    config = _load(args)
    database = _database(config)
    read, store = ReadModel(config, database), database.drift
    key = TargetKey(args.cloud, args.region, args.schema)
    tid = read.row(key).id
    now = datetime.now(UTC)
    if args.approve:
        snapshot = store.approve_current(tid, comment=args.comment, actor=args.by, now=now)
        out.write(f"{key}: snapshot {snapshot} is now the approved baseline\n")
        return EXIT_OK
    known = {i.fingerprint for i in read.drift(key, now)}
    chosen = _resolve_fingerprints(args.fingerprint, known)
    expires = now + timedelta(seconds=parse_duration(args.expires)) if args.expires else None
    count = store.acknowledge(tid, chosen, comment=args.comment, actor=args.by, now=now, expires_at=expires)
    until = f" until {expires:%Y-%m-%d %H:%M} UTC" if expires else ""
    out.write(f"{key}: acknowledged {count} change(s){until}\n")
    return EXIT_OK


def _resolve_fingerprints(given: Sequence[str], known: set[str]) -> list[str]:
    """Full fingerprints for the given ones or their unique prefixes (at least 8 characters)."""
    chosen = []
    for prefix in given:
        matches = [fp for fp in known if fp.startswith(prefix)] if len(prefix) >= 8 else []
        if len(matches) != 1:
            raise UsageError(f"fingerprint {prefix!r} matches {len(matches)} current drift change(s); see `drift`")
        chosen.append(matches[0])
    return chosen


def cmd_expect(args: argparse.Namespace, out: TextIO) -> int:
    config = _load(args)
    if args.cloud not in {c.name for c in config.clouds}:
        raise UsageError(f"unknown cloud {args.cloud!r}")
    start = parse_since(args.start) if args.start else datetime.now(UTC)
    window = Window(args.cloud, args.schema, start, start + timedelta(seconds=parse_duration(args.duration)),
                    args.comment)  # fmt: skip
    _database(config).drift.add_window(window, args.by, datetime.now(UTC))
    scope = f"{args.cloud}/{args.schema}" if args.schema else f"{args.cloud} (all schemas)"
    out.write(f"changes to {scope} are expected from {window.starts_at:%Y-%m-%d %H:%M} to "
              f"{window.ends_at:%Y-%m-%d %H:%M} UTC\n")  # fmt: skip
    return EXIT_OK


def cmd_export_git(args: argparse.Namespace, out: TextIO) -> int:
    from monitor.signals.gitexport import ExportError, ExportRefusedError, export_git
    from monitor.store.records import ExportScope

    scope = ExportScope(args.cloud, args.region, args.schema)
    store = _database(_load(args)).export
    try:
        result = export_git(Path(args.directory), scope, partial(store.snapshots, scope))
    except ExportRefusedError as exc:
        raise UsageError(str(exc)) from None
    except ExportError as exc:
        print(f"schema-drift-monitor: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if result.added:
        out.write(f"{args.directory}: {result.added} commit(s) added, last snapshot {result.last_snapshot_id}\n")
    else:
        out.write(f"{args.directory}: up to date\n")
    return EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace, out: TextIO) -> int:
    from monitor.app import StartupError
    from monitor.store.database import upgrade_database
    from monitor.store.engine import safe_url
    from monitor.store.records import DatabaseUnavailableError

    url = _load(args).database.url.get_secret_value()
    try:
        before, after = upgrade_database(url)
    except DatabaseUnavailableError as exc:
        raise StartupError(str(exc)) from None
    out.write(f"{safe_url(url)}: schema revision {before or '(empty)'} → {after}\n")
    return EXIT_OK


def cmd_config_check(args: argparse.Namespace, out: TextIO) -> int:
    config = _load(args)
    specs, undiscovered = config.targets(), list[str]()
    if args.discover:
        from monitor.app import discovered_targets

        specs, undiscovered = asyncio.run(discovered_targets(config))
    out.write(f"{args.config}: OK — {len(config.clouds)} cloud(s), {len(specs)} target(s)\n")
    for spec in specs:
        out.write(f"  {spec.key}  {spec.url}  every {spec.interval:g}s\n")
    for cloud in config.clouds:
        if not cloud.static:
            regions = "regions: auto" if cloud.regions == "auto" else "endpoints from the catalog"
            out.write(f"  {cloud.name}: {regions} ({cloud.discovery.source}), found at start and every "
                      f"{cloud.discovery.refresh:g}s\n")  # fmt: skip
        if cloud.services is not None:
            listed = "all" if cloud.services == "all" else ", ".join(cloud.services)
            out.write(f"  {cloud.name}: API surface of services {listed} (from the catalog)\n")
        if cloud.auth.type not in ("none", "token"):
            out.write(f"  {cloud.name}: auth {cloud.auth.type}\n")
    _warn_unwritable_database(config, out)
    if undiscovered:
        out.write(f"  discovery failed for {', '.join(undiscovered)} (see the log)\n")
        return EXIT_FAILED
    return EXIT_OK


def _warn_unwritable_database(config: Config, out: TextIO) -> None:
    """A SQLite database this user cannot write is worth a warning (the config is valid; the host is not ready)."""
    from monitor.store.sqlite_path import not_writable

    problem = not_writable(config.database.url.get_secret_value())
    if problem is not None:
        out.write(f"  warning: {problem}\n")


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
    "compare": cmd_compare,
    "drift": cmd_drift,
    "surface": cmd_surface,
    "ack": cmd_ack,
    "expect": cmd_expect,
    "export": cmd_export_git,
    "db": cmd_db_upgrade,
    "config": cmd_config_check,
    "demo": cmd_demo,
}


# --- rendering -------------------------------------------------------------------------------------


def _history_line(record: ChangeRecord, color: bool) -> str:
    label = paint(f"{record.severity.value:<9}", record.severity, color)
    flags = "".join(f" [{flag}]" for flag in ("ignored", "expected") if getattr(record, flag))
    return (
        f"{record.detected_at:%Y-%m-%d %H:%M:%S}  {record.target}  {label} {record.rule:<30} {record.path}  "
        f"{short_json(record.old, 40)} → {short_json(record.new, 40)}  {record.fingerprint[:12]}{flags}"
    )


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
        "changes": [change_json(c) for c in result.changes],
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


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit code (see module docstring)."""
    from monitor.app import StartupError

    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    try:
        return COMMANDS[args.command](args, out or sys.stdout)
    except ConfigError as exc:
        print(f"schema-drift-monitor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (UsageError, LookupError, ValueError, Conflict) as exc:
        print(f"schema-drift-monitor: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return EXIT_USAGE
    except (StartupError, StoreError) as exc:
        print(f"schema-drift-monitor: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head` and closed early
        sys.stderr.close()
        return EXIT_OK
