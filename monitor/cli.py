"""Command line: argument parsing, printing and exit codes — nothing else.

Exit codes: 0 success; 1 a poll failed or the monitor could not start (database, port); 2 usage or
configuration error — a bad option value, a label the configuration lacks, a target not found, a question not
answerable yet (a diff needs two snapshots); 3 (``check --fail-on``) a change at or above the given severity
was found, or (``consumers``) a consumer is broken in a region (or, with ``--strict``, not known to work).

The commands are a table (:data:`COMMANDS`): each names its one-line description (its entry in the command
list and the first line of its own ``--help``), its arguments and its handler. Option values are checked as
the API checks its query (:mod:`monitor.read.checks`: the same ranges, the same sentences); ``ack`` and
``expect`` go through :mod:`monitor.read.commands`, as the API's write routes do. The store is reached only
through ``monitor.read`` and its admin door :mod:`monitor.store.admin` (``db upgrade``, ``export``). Every
command that prints data takes ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO, TypeVar

from monitor import __version__
from monitor.config import DEFAULT_LISTEN, NO_CLOUDS_YAML, CloudsYamlCloud, Config, ConfigError, load_config
from monitor.domain import PollResult, Severity, TargetKey, TargetSpec, change_json
from monitor.logs import FORMATS as LOG_FORMATS
from monitor.logs import setup_logging
from monitor.read import checks, reports
from monitor.read.check_reports import check_junit, check_markdown, gated
from monitor.read.commands import MAX_SPAN, Acknowledged, Commands, Conflict, Expected, drift_json
from monitor.read.consumer_reports import FORMATS as CONSUMER_FORMATS
from monitor.read.consumer_reports import consumers_junit, consumers_markdown, consumers_text
from monitor.read.matrix import comparison_json, matrix_markdown, matrix_text
from monitor.read.model import ReadModel, SurfaceView
from monitor.read.records import ChangeRecord, HistoryFilter, StoreError
from monitor.read.reports import change_line, paint, short_json

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CHANGED = 0, 1, 2, 3
DEFAULT_CONFIG = "config.yaml"
MAX_HISTORY: Final = 1_000_000  # history --limit: far above any real history, short of an overflow

log = logging.getLogger("monitor")
T = TypeVar("T")


class UsageError(Exception):
    """Bad arguments that argparse cannot catch (exit code 2)."""


# --- argument types: the checks of monitor.read.checks, as argparse errors (usage, exit 2) ---------------


def _typed(check: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse ``type`` from a check: its sentence becomes the usage error ``argument --x: must be …``."""

    def convert(text: str) -> T:
        try:
            return check(text)
        except checks.Invalid as exc:
            raise argparse.ArgumentTypeError(str(exc).strip()) from None

    return convert


# the checks get no name: argparse says "argument --limit: " before their "must be …"
HISTORY_LIMIT = _typed(lambda text: checks.whole_number("", text, 1, MAX_HISTORY))
SNAPSHOT_ID = _typed(lambda text: checks.whole_number("", text))
MOMENT = _typed(lambda text: checks.moment("", text))
SPAN = _typed(lambda text: checks.duration("", text, MAX_SPAN))
INTERVAL = _typed(lambda text: checks.duration("", text))
DELAY = _typed(lambda text: checks.duration("", text, zero=True))


# --- the parser: one table row per command ---------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """A (sub)command: ``about`` is its one line in the list and in its own ``--help``; ``arguments`` adds its
    options; ``run`` is its handler; ``actions`` its own subcommands (``export git``, ``db upgrade``)."""

    name: str
    about: str
    arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None
    run: Callable[[argparse.Namespace, TextIO], int] | None = None
    config: bool = True
    actions: tuple[Command, ...] = field(default=())
    metavar: str = "ACTION"


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", default=DEFAULT_CONFIG, metavar="FILE",
        help=f"YAML configuration file (default: {DEFAULT_CONFIG})",
    )  # fmt: skip


def _add_target_filters(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--cloud", required=required, help="cloud name from the config")
    parser.add_argument("--region", required=required, help="region name from the config")
    parser.add_argument("--schema", required=required, help="schema name, e.g. images")


def _add_json(parser: argparse.ArgumentParser, what: str = "print JSON") -> None:
    parser.add_argument("--json", action="store_true", help=what)


def _add_color(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--color", choices=["auto", "always", "never"], default="auto", help="default: auto")


def _add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=reports.FORMATS, default="text", help="output format (default: text)")
    _add_json(parser, "same as --format json")
    _add_color(parser)


def _whoami() -> str:
    return os.environ.get("USER") or os.environ.get("LOGNAME") or "cli"


def _target(parser: argparse.ArgumentParser) -> None:
    _add_target_filters(parser, required=True)
    _add_json(parser)


def _add_web_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--web.config.file", dest="web_config_file", metavar="FILE",
        help="Prometheus exporter-toolkit web configuration (TLS, basic auth) for the HTTP port; "
             "wins over http.web_config_file",
    )  # fmt: skip


def _run_args(parser: argparse.ArgumentParser) -> None:
    """The daemon's options: its web configuration (every command but ``demo`` gets ``--config``)."""
    _add_web_config(parser)


def _healthcheck_args(parser: argparse.ArgumentParser) -> None:
    _add_web_config(parser)
    parser.add_argument("--timeout", type=SPAN, default=4.0, help="how long to wait for the answer (default 4s)")
    parser.add_argument("--client-cert", metavar="FILE", help="client certificate, for RequireAndVerifyClientCert")
    parser.add_argument("--client-key", metavar="FILE", help="its private key (default: in --client-cert)")


def _add_ci_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", choices=CONSUMER_FORMATS, default="text",
        help="output format: text, json, junit (JUnit XML for CI) or markdown (default: text)",
    )  # fmt: skip
    _add_json(parser, "same as --format json")


def _check_args(parser: argparse.ArgumentParser) -> None:
    _add_ci_format(parser)
    parser.add_argument(
        "--fail-on", choices=["breaking", "warning", "any"],
        help="exit 3 when a change of this severity or worse was found (any: any change)",
    )  # fmt: skip


def _consumers_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--consumer", metavar="NAME", help="only this consumer (default: every one configured)")
    parser.add_argument("--region", help="only this region (default: every region a consumer is judged in)")
    _add_ci_format(parser)
    parser.add_argument(
        "--strict",
        action="store_true",
        help="a consumer not known to work in a region (no document yet, polls failing) fails too",
    )


def _history_args(parser: argparse.ArgumentParser) -> None:
    _add_target_filters(parser, required=False)
    parser.add_argument("--severity", choices=[s.value for s in Severity], help="this severity or worse")
    parser.add_argument("--since", type=MOMENT, help=f"only changes since then: {checks.MOMENT_RULE}")
    parser.add_argument("--limit", type=HISTORY_LIMIT, default=1000,
                        help=f"at most this many, the newest: 1 to {MAX_HISTORY} (default 1000)")  # fmt: skip
    _add_json(parser, "print a JSON list of change objects")


def _diff_args(parser: argparse.ArgumentParser) -> None:
    _add_target_filters(parser, required=True)
    parser.add_argument("--from", dest="from_id", type=SNAPSHOT_ID, help="snapshot id (default: the one before --to)")
    parser.add_argument("--to", dest="to_id", type=SNAPSHOT_ID, help="snapshot id (default: the latest)")
    parser.add_argument(
        "--baseline", action="store_true", help="compare the approved baseline with the current document"
    )
    parser.add_argument("--against-region", metavar="REGION", help="compare with another region's current document")
    parser.add_argument("--against-cloud", metavar="CLOUD", help="... of another cloud (with the same schema name)")
    _add_output(parser)


def _compare_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cloud", required=True, help="cloud name from the config")
    parser.add_argument("--schema", required=True, help="schema name, e.g. images")
    parser.add_argument("--reference", help="'majority' or a region (default: the cloud's `reference` setting)")
    parser.add_argument("--with-cloud", metavar="CLOUD", help="also compare the regions of this cloud")
    _add_output(parser)


def _surface_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cloud", required=True, help="cloud name from the config")
    _add_json(parser)


def _drift_args(parser: argparse.ArgumentParser) -> None:
    _target(parser)
    _add_color(parser)


def _ack_args(parser: argparse.ArgumentParser) -> None:
    _add_target_filters(parser, required=True)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--fingerprint", action="append", default=[],
                      help="a fingerprint from `drift`, or its first 8+ hex digits; repeat for more")  # fmt: skip
    what.add_argument("--approve", action="store_true", help="make the current document the approved baseline")
    parser.add_argument("--comment", required=True, help="why (stored with who and when)")
    parser.add_argument("--by", default=_whoami(), help="who acknowledges (default: $USER)")
    parser.add_argument("--expires", type=SPAN, help="fingerprint acks only: lapse after this long (e.g. 7d)")
    _add_json(parser, "print the outcome as JSON (as the API answers)")


def _expect_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cloud", required=True, help="cloud name from the config")
    parser.add_argument("--schema", help="only this schema (default: all)")
    parser.add_argument("--for", dest="duration", type=SPAN, required=True, help="window length, e.g. 2h")
    parser.add_argument("--start", type=MOMENT, help="ISO date/time (default: now)")
    parser.add_argument("--comment", required=True, help="why, e.g. the change ticket")
    parser.add_argument("--by", default=_whoami(), help="who (default: $USER)")
    _add_json(parser, "print the window as JSON (as the API answers)")


def _export_git_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", metavar="DIR", help="created when missing or empty; later runs add new snapshots")
    _add_target_filters(parser, required=False)
    _add_json(parser)


def _config_check_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--discover", action="store_true", help="also ask the identity service for regions and catalogs; list them"
    )
    _add_json(parser)


def _demo_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", default="127.0.0.1:9478", help="metrics address (default 127.0.0.1:9478)")
    parser.add_argument("--database", default="sqlite:///./data/demo.db",
                        help="database URL (default sqlite:///./data/demo.db, emptied at each demo start)")  # fmt: skip
    parser.add_argument("--interval", type=INTERVAL, default=5.0, help="poll interval (default 5s)")
    parser.add_argument("--change-after", type=DELAY, default=20.0,
                        help="when to change one region's schema (default 20s)")  # fmt: skip
    parser.add_argument("--duration", type=DELAY, default=0.0, help="stop after this long (default 0: until Ctrl-C)")
    _add_web_config(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="schema-drift-monitor",
        description="Watch cloud API schema endpoints in every region; record and export every change.",
        epilog="Exit codes: 0 ok, 1 poll failed or cannot start, 2 usage/config error, 3 --fail-on matched "
        "(consumers: a consumer is broken).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default: INFO"
    )
    parser.add_argument(
        "--log-format", default="text", choices=LOG_FORMATS,
        help="text lines, or one JSON object per line (time, level, logger, message, cloud/region/schema)",
    )  # fmt: skip
    _add_commands(parser, COMMANDS, "command", "COMMAND")
    return parser


def _add_commands(parser: argparse.ArgumentParser, commands: Sequence[Command], dest: str, metavar: str) -> None:
    sub = parser.add_subparsers(dest=dest, required=True, metavar=metavar)
    for command in commands:
        child = sub.add_parser(command.name, help=command.about, description=command.about)
        if command.actions:
            _add_commands(child, command.actions, f"{command.name}_command", command.metavar)
            continue
        command.arguments(child)
        if command.config:
            _add_config(child)
        child.set_defaults(handler=command.run)


# --- commands --------------------------------------------------------------------------------------


def _load(args: argparse.Namespace) -> Config:
    """The configuration file, with ``--web.config.file`` (where the command has it) winning over its own."""
    config = load_config(args.config, clouds_yaml=_read_clouds_yaml)
    web_config = getattr(args, "web_config_file", None)
    if web_config is None:
        return config
    return config.model_copy(update={"http": config.http.model_copy(update={"web_config_file": Path(web_config)})})


def _read_clouds_yaml(name: str | None) -> CloudsYamlCloud:
    """clouds.yaml through openstacksdk, imported only for a config that needs it (it is an optional extra)."""
    try:
        from monitor.auth.clouds import resolve
    except ImportError:
        raise ValueError(NO_CLOUDS_YAML) from None
    return resolve(name)


def _read(config: Config) -> ReadModel:
    from monitor.app import open_database

    return ReadModel(config, open_database(config))


def _commands(config: Config) -> Commands:
    from monitor.app import open_database

    database = open_database(config)
    return Commands(config, ReadModel(config, database), database.drift)


def _check_labels(config: Config, read: ReadModel, **given: str | None) -> None:
    """Each given label (cloud, region, schema; other_cloud is a cloud) must be one the configured targets or
    the database's have; raises Invalid with the API's sentence."""
    if not any(given.values()):
        return
    keys = [spec.key for spec in config.targets()] + list(read.known())
    known = checks.labels_of(keys, [c.name for c in config.clouds])
    known["schema"] = sorted({*known["schema"], *(s.name for c in config.clouds for s in c.schemas)})
    for name, value in given.items():
        label = "cloud" if name == "other_cloud" else name
        checks.label(label, value, known[label])


def _dump(data: Any, out: TextIO) -> None:
    out.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    from monitor.app import run_daemon

    return asyncio.run(run_daemon(_load(args)))


def cmd_healthcheck(args: argparse.Namespace, out: TextIO) -> int:
    """One line, and 0 when healthy, 1 otherwise — also for an unreadable config (Docker reserves 2).

    Without a config file (``demo`` in the image) it asks the default address, over TLS when
    ``--web.config.file`` says so.
    """
    from monitor.config.webconfig import load_web_config
    from monitor.web.probe import check_health, client_context, health_url

    try:
        listen, path = _health_address(args)
        tls = load_web_config(path).tls if path is not None else None
        host, _, port = listen.rpartition(":")
        url = health_url(host.strip("[]"), int(port), tls is not None)
        cert, key = (Path(f) if f else None for f in (args.client_cert, args.client_key))
        context = client_context(tls, cert, key) if tls is not None else None
        healthy, line = check_health(url, context, args.timeout)
    except ConfigError as exc:
        healthy, line = False, f"unhealthy: {exc.source}: {exc.problems[0]}"
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        healthy, line = False, f"unhealthy: {exc}"
    out.write(line + "\n")
    return EXIT_OK if healthy else EXIT_FAILED


def _health_address(args: argparse.Namespace) -> tuple[str, Path | str | None]:
    """The listen address and the web configuration to probe: the config file's, or the defaults without one."""
    if not Path(args.config).exists():
        return DEFAULT_LISTEN, args.web_config_file
    config = _load(args)
    return config.http.listen, config.http.web_config_file


def cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    from monitor.app import check_once

    results = asyncio.run(check_once(_load(args)))
    fmt = _format(args)
    if fmt == "json":
        _dump([_result_json(r) for r in results], out)
    elif fmt == "junit":
        out.write(check_junit(results, args.fail_on))
    elif fmt == "markdown":
        out.write(check_markdown(results, args.fail_on))
    else:
        for result in results:
            out.write(_result_line(result) + "\n")
    return _check_exit_code(results, args.fail_on)


def _check_exit_code(results: Sequence[PollResult], fail_on: str | None) -> int:
    if any(gated(result, fail_on) for result in results):
        return EXIT_CHANGED
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED


def cmd_consumers(args: argparse.Namespace, out: TextIO) -> int:
    """The consumers-by-regions matrix from the database: 3 when a pair is broken (or, ``--strict``, unknown)."""
    config = _load(args)
    if not config.consumers:
        raise UsageError(f"{args.config} declares no consumers: add a consumers: section (see docs/consumers.md)")
    found = _read(config).consumers(args.consumer, args.region)
    fmt = _format(args)
    if fmt == "json":
        _dump(found.as_json(), out)
    elif fmt == "junit":
        out.write(consumers_junit(found, strict=args.strict))
    elif fmt == "markdown":
        out.write(consumers_markdown(found))
    else:
        out.write(consumers_text(found))
    failing = found.broken or (args.strict and found.unknown)
    return EXIT_CHANGED if failing else EXIT_OK


def cmd_history(args: argparse.Namespace, out: TextIO) -> int:
    config = _load(args)
    read = _read(config)
    _check_labels(config, read, cloud=args.cloud, region=args.region, schema=args.schema)
    where = HistoryFilter(
        cloud=args.cloud,
        region=args.region,
        schema=args.schema,
        min_severity=Severity(args.severity) if args.severity else None,
        since=args.since,
        limit=args.limit,
    )
    records = read.history(where)
    if args.json:
        _dump([r.as_json() for r in records], out)
        return EXIT_OK
    color = out.isatty()
    for record in records:
        out.write(_history_line(record, color) + "\n")
    if not records:
        out.write("no changes recorded" + (" that match" if _filtered(args) else "") + "\n")
    return EXIT_OK


def _filtered(args: argparse.Namespace) -> bool:
    return any((args.cloud, args.region, args.schema, args.severity, args.since))


def cmd_snapshots(args: argparse.Namespace, out: TextIO) -> int:
    rows = _read(_load(args)).snapshots(_key(args))
    if args.json:
        _dump([r.as_json() for r in rows], out)
    else:
        for r in rows:
            seen = f"{r.first_seen:%Y-%m-%d %H:%M:%S} → {r.last_seen:%Y-%m-%d %H:%M:%S}"
            out.write(f"{r.id:>6}  {r.document_sha256[:12]}  {seen}\n")
    return EXIT_OK


def _key(args: argparse.Namespace) -> TargetKey:
    return TargetKey(args.cloud, args.region, args.schema)


def cmd_diff(args: argparse.Namespace, out: TextIO) -> int:
    read = _read(_load(args))
    key = _key(args)
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
    config = _load(args)
    read = _read(config)
    _check_labels(config, read, cloud=args.cloud, schema=args.schema, other_cloud=args.with_cloud)
    view = read.compare(args.cloud, args.schema, args.reference, args.with_cloud)
    deviations = [comparison for _, comparison in view.deviations]
    fmt = _format(args)
    if fmt == "json":
        _dump({**comparison_json(view.comparison, view.labels),
               "deviations": json.loads(reports.render_json(deviations) or "[]")}, out)  # fmt: skip
    elif fmt == "markdown":
        out.write(matrix_markdown(view.comparison, view.labels) + "\n" + reports.render_markdown(deviations))
    else:
        out.write(matrix_text(view.comparison, view.labels) + "\n")
        out.write(reports.render(fmt, deviations, color=_color(args, out)))
    return EXIT_OK


def cmd_surface(args: argparse.Namespace, out: TextIO) -> int:
    config = _load(args)
    read = _read(config)
    _check_labels(config, read, cloud=args.cloud)
    view = read.surface(args.cloud)
    if args.json:
        _dump(view.as_json(), out)
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
    key = _key(args)
    items = _read(_load(args)).drift(key)
    if args.json:
        _dump(drift_json(items), out)
        return EXIT_OK
    pending = [i for i in items if not i.acknowledged]
    out.write(f"{key}: {len(items)} change(s) from the baseline, {len(pending)} unacknowledged\n")
    for item in items:
        mark = "acked" if item.acknowledged else "     "
        out.write(f"  {item.fingerprint[:16]}  {mark} {change_line(item.change, _color(args, out)).strip()}\n")
    return EXIT_OK


def cmd_ack(args: argparse.Namespace, out: TextIO) -> int:
    commands = _commands(_load(args))
    if args.approve:
        done = commands.approve(_key(args), comment=args.comment, by=args.by, expires_in=args.expires)
    else:
        done = commands.acknowledge(_key(args), args.fingerprint, comment=args.comment, by=args.by,
                                    expires_in=args.expires)  # fmt: skip
    return _done(done, args.json, out)


def _done(done: Acknowledged | Expected, as_json: bool, out: TextIO) -> int:
    """Print what a command did: the API's JSON answer, or one sentence."""
    if as_json:
        _dump(done.as_json(), out)
    else:
        out.write(done.sentence() + "\n")
    return EXIT_OK


def cmd_expect(args: argparse.Namespace, out: TextIO) -> int:
    done = _commands(_load(args)).expect(args.cloud, args.schema, duration=args.duration, start=args.start,
                                         comment=args.comment, by=args.by)  # fmt: skip
    return _done(done, args.json, out)


def cmd_export_git(args: argparse.Namespace, out: TextIO) -> int:
    from monitor.app import open_database
    from monitor.signals.gitexport import ExportError, ExportRefusedError, export_git
    from monitor.store import admin

    config = _load(args)
    database = open_database(config)
    _check_labels(config, ReadModel(config, database), cloud=args.cloud, region=args.region, schema=args.schema)
    scope = admin.ExportScope(args.cloud, args.region, args.schema)
    try:
        result = export_git(Path(args.directory), scope, admin.export_source(database, scope))
    except ExportRefusedError as exc:
        raise UsageError(str(exc)) from None
    except ExportError as exc:
        print(f"schema-drift-monitor: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        _dump({"directory": args.directory, "scope": str(scope), "added": result.added,
               "last_snapshot_id": result.last_snapshot_id}, out)  # fmt: skip
    elif result.added:
        out.write(f"{args.directory}: {result.added} commit(s) added, last snapshot {result.last_snapshot_id}\n")
    else:
        out.write(f"{args.directory}: up to date\n")
    return EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace, out: TextIO) -> int:
    from monitor.app import StartupError
    from monitor.store import admin

    try:
        done = admin.upgrade(_load(args).database.url.get_secret_value())
    except admin.DatabaseUnavailableError as exc:
        raise StartupError(str(exc)) from None
    if args.json:
        _dump(done.as_json(), out)
    else:
        out.write(f"{done.url}: schema revision {done.before or '(empty)'} → {done.after}\n")
    return EXIT_OK


def cmd_config_check(args: argparse.Namespace, out: TextIO) -> int:
    config = _load(args)
    specs, undiscovered = config.targets(), list[str]()
    if args.discover:
        from monitor.app import discovered_targets

        specs, undiscovered = asyncio.run(discovered_targets(config))
    warnings = _warnings(config)
    if args.json:
        _dump({**_config_json(args.config, config, specs, undiscovered), "warnings": warnings}, out)
    else:
        out.write(_config_text(args.config, config, specs, undiscovered))
        out.writelines(f"  warning: {warning}\n" for warning in warnings)
    return EXIT_FAILED if undiscovered else EXIT_OK


def _warnings(config: Config) -> list[str]:
    """What makes a valid config fail on this host: a SQLite database this user cannot write."""
    from monitor.store.admin import not_writable

    problem = not_writable(config.database.url.get_secret_value())
    return [problem] if problem is not None else []


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    from monitor.demo import run_demo

    return run_demo(listen=args.listen, database=args.database, interval=args.interval,
                    change_after=args.change_after, duration=args.duration, out=out,
                    web_config_file=args.web_config_file)  # fmt: skip


def _db_upgrade_args(parser: argparse.ArgumentParser) -> None:
    _add_json(parser)


COMMANDS: tuple[Command, ...] = (
    Command("run", "run the daemon: poll on schedule; serve /metrics, /healthz, /api/, /ui/", _run_args,
            cmd_run),
    Command("healthcheck", "exit 0 when this host's monitor answers /healthz (for HEALTHCHECK and probes)",
            _healthcheck_args, cmd_healthcheck),
    Command("check", "poll every target once and exit (for cron and CI)", _check_args, cmd_check),
    Command("consumers", "will my clients still work? each consumer's requirements, region by region",
            _consumers_args, cmd_consumers),
    Command("history", "list recorded changes, oldest first", _history_args, cmd_history),
    Command("snapshots", "list a target's stored snapshots (ids for diff)", _target, cmd_snapshots),
    Command("diff", "show the changes between two stored snapshots of a target", _diff_args, cmd_diff),
    Command("compare", "group a cloud's regions by the document they serve; show deviations", _compare_args,
            cmd_compare),
    Command("surface", "the API surface of a cloud: versions and microversions per region", _surface_args,
            cmd_surface),
    Command("drift", "changes between a target's approved baseline and now, with fingerprints", _drift_args,
            cmd_drift),
    Command("ack", "acknowledge drift by fingerprint, or approve the current document", _ack_args,
            cmd_ack),
    Command("expect", "declare an expected-change window: changes are recorded but do not page", _expect_args,
            cmd_expect),
    Command("export", "write the stored history in another form", metavar="FORMAT", actions=(
        Command("git", "a git repository: a commit per snapshot, <cloud>/<region>/<schema>.json",
                _export_git_args, cmd_export_git),
    )),
    Command("db", "database maintenance", actions=(
        Command("upgrade", "apply pending schema migrations", _db_upgrade_args, cmd_db_upgrade),
    )),
    Command("config", "configuration tools", actions=(
        Command("check", "validate the configuration and list the targets; no polling", _config_check_args,
                cmd_config_check),
    )),
    Command("demo", "run the monitor against built-in simulated regions (no credentials)", _demo_args, cmd_demo,
            config=False),
)  # fmt: skip


# --- rendering -------------------------------------------------------------------------------------


def _config_text(path: str, config: Config, specs: Sequence[TargetSpec], undiscovered: Sequence[str]) -> str:
    lines = [f"{path}: OK — {len(config.clouds)} cloud(s), {len(specs)} target(s)"]
    lines += [f"  {spec.key}  {spec.url}  every {spec.interval:g}s" for spec in specs]
    for cloud in config.clouds:
        if not cloud.static:
            regions = "regions: auto" if cloud.regions == "auto" else "endpoints from the catalog"
            lines.append(f"  {cloud.name}: {regions} ({cloud.discovery.source}), found at start and every "
                         f"{cloud.discovery.refresh:g}s")  # fmt: skip
        if cloud.services is not None:
            listed = "all" if cloud.services == "all" else ", ".join(cloud.services)
            lines.append(f"  {cloud.name}: API surface of services {listed} (from the catalog)")
        if cloud.auth.type not in ("none", "token"):
            lines.append(f"  {cloud.name}: auth {cloud.auth.type}")
    if undiscovered:
        lines.append(f"  discovery failed for {', '.join(undiscovered)} (see the log)")
    return "\n".join(lines) + "\n"


def _config_json(path: str, config: Config, specs: Sequence[TargetSpec], undiscovered: Sequence[str]) -> Any:
    """``{"config", "clouds": [{"name", "regions", "discovery", "services", "auth"}], "targets": [{"cloud", "region",
    "schema", "url", "interval_seconds"}], "discovery_failed": [cloud, ...]}`` (``config check`` adds
    ``"warnings"``) — never a credential."""
    clouds = [
        {"name": c.name, "regions": c.regions, "discovery": None if c.static else c.discovery.source,
         "services": c.services, "auth": c.auth.type}
        for c in config.clouds
    ]  # fmt: skip
    targets = [
        {"cloud": s.key.cloud, "region": s.key.region, "schema": s.key.schema, "url": s.url,
         "interval_seconds": s.interval}
        for s in specs
    ]  # fmt: skip
    return {"config": path, "clouds": clouds, "targets": targets, "discovery_failed": list(undiscovered)}


def _history_line(record: ChangeRecord, color: bool) -> str:
    label = paint(f"{record.severity.value:<9}", record.severity, color)
    flags = "".join(f" [{flag}]" for flag in ("ignored", "expected") if getattr(record, flag))
    flags += "".join(f" [breaks {consumer} in {record.target.region}]"
                     for consumer in dict.fromkeys(mark.consumer for mark in record.breaks))  # fmt: skip
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
        handler: Callable[[argparse.Namespace, TextIO], int] = args.handler
        return handler(args, out or sys.stdout)
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
