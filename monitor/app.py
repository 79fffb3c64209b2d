"""Composition root: the one place where concrete adapters are built and wired together.

``run_daemon`` serves until SIGTERM/SIGINT (or ``stop`` is set) and returns the process exit code;
``check_once`` polls every target once and returns the results. Both prepare the database first:
SQLite is migrated automatically, PostgreSQL must already be at the current revision.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from monitor import __version__
from monitor.auth.manager import AuthManager, warn_insecure
from monitor.config import Config
from monitor.domain import PollResult, TargetSpec
from monitor.fleet.live import Intelligence
from monitor.ha.replicas import Replicas, SoloReplica, replica_name
from monitor.poll.fetch import Fetcher
from monitor.poll.scheduler import PollScheduler
from monitor.poll.service import PollService
from monitor.read.model import ReadModel
from monitor.signals.metrics import Metrics
from monitor.signals.notify.dispatcher import Dispatcher, build_channels
from monitor.store.database import Database
from monitor.store.records import DatabaseInUseError, DatabaseUnavailableError, SchemaOutdatedError, StoreError
from monitor.store.sqlite_lock import sqlite_lock_for
from monitor.store.sqlite_path import not_writable
from monitor.targets.retarget import Retargeter
from monitor.targets.topology import Topology
from monitor.web.api import ApiContext
from monitor.web.app import create_app
from monitor.web.guard import Guard
from monitor.web.server import guarded_server

log = logging.getLogger(__name__)


class StartupError(Exception):
    """The daemon cannot start; the message says why and what to do."""


@dataclass
class Components:
    """Everything one monitor process needs, built from a Config."""

    config: Config
    topology: Topology
    database: Database
    metrics: Metrics
    fetcher: Fetcher
    service: PollService
    intelligence: Intelligence
    retargeter: Retargeter

    @property
    def specs(self) -> list[TargetSpec]:
        """The targets polled now (the config's, plus discovered regions)."""
        return self.topology.specs()

    async def aclose(self) -> None:
        """Close everything; blocking steps run in a thread so a second signal still reaches the loop."""
        await self.fetcher.aclose()
        await asyncio.to_thread(self.service.close)
        await asyncio.to_thread(self.database.dispose)


def open_database(config: Config) -> Database:
    """The configured database with its schema current; raises StartupError with a clear message otherwise."""
    try:
        return Database.open(config.database.url.get_secret_value())
    except (SchemaOutdatedError, DatabaseUnavailableError) as exc:
        raise StartupError(str(exc)) from None


def build(config: Config) -> Components:
    """Open the database and build the pipeline; raises StartupError."""
    database = open_database(config)
    metrics = Metrics(version=__version__, detail=config.metrics.detail)
    fetcher = Fetcher()
    auth = AuthManager(metrics)
    topology = Topology(config, auth, metrics)
    specs = topology.specs()
    intelligence = Intelligence(specs, config, metrics, database.drift)
    service = PollService(
        database.repository,
        fetcher,
        metrics,
        max_concurrency=config.polling.max_concurrency,
        intelligence=intelligence,
        auth=auth,
        conditional=config.polling.conditional,
    )
    try:
        service.prepare(specs)
    except StoreError as exc:
        service.close()
        database.dispose()
        raise StartupError(f"cannot prepare the database: {exc}") from None
    warn_insecure(config.clouds)
    return Components(
        config, topology, database, metrics, fetcher, service, intelligence, Retargeter(topology, service)
    )


async def start(config: Config) -> Components:
    """:func:`build`, then a first region discovery for clouds that need one; raises StartupError."""
    parts = build(config)
    try:
        await parts.retargeter.discover(force=True)
    except StoreError as exc:
        await parts.aclose()
        raise StartupError(f"cannot register discovered targets: {exc}") from None
    return parts


async def discovered_targets(config: Config) -> tuple[list[TargetSpec], list[str]]:
    """Every target once discovery has answered (no database, no polling), and the clouds it failed for."""
    auth = AuthManager(Metrics(version=__version__))
    topology = Topology(config, auth)
    try:
        found = await topology.discover(force=True)
        if found is not None:
            topology.commit(found)
        return topology.specs(), topology.undiscovered()
    finally:
        await asyncio.to_thread(auth.close)


async def check_once(config: Config) -> list[PollResult]:
    """Poll every target once, concurrently; raises StartupError (also when a cloud's regions are unknown)."""
    parts = await start(config)
    missing = parts.topology.undiscovered()
    if missing:
        await parts.aclose()
        raise StartupError(f"region discovery failed for cloud(s) {', '.join(missing)} (see the log above)")
    try:
        return list(await asyncio.gather(*(_poll_guarded(parts.service, spec) for spec in parts.specs)))
    finally:
        await parts.aclose()


async def _poll_guarded(service: PollService, spec: TargetSpec) -> PollResult:
    """One poll with the same error boundary as the scheduler's job: a bug is an ``internal`` failure."""
    try:
        return await service.poll(spec)
    except Exception:
        log.exception("%s: poll raised", spec.key)
        return service.count_internal_error(spec.key)


async def run_daemon(config: Config, stop: asyncio.Event | None = None) -> int:
    """Serve until stopped; returns the exit code. Raises StartupError (or ConfigError, for the web
    configuration file) before serving.

    On SQLite the database file is locked for this process (a second one is refused, naming the first); on
    PostgreSQL the replicas coordinate (:mod:`monitor.ha.replicas`) and this one polls its share.
    """
    stop = stop or asyncio.Event()
    guard = open_guard(config)
    if guard is not None:
        log.info("%s", guard.describe())
        guard.watch()  # re-reads the file when it (or a certificate it names) changes
    try:
        with _exclusive(config):
            return await _serve(config, stop, guard)
    finally:
        if guard is not None:
            guard.close()


def open_guard(config: Config) -> Guard | None:
    """The guard of ``http.web_config_file`` (None without one); raises ConfigError naming that file."""
    path = config.http.web_config_file
    return None if path is None else Guard.load(path, config.api.token)


async def _serve(config: Config, stop: asyncio.Event, guard: Guard | None) -> int:
    parts = await start(config)
    replicas = _replicas(parts)
    try:
        await replicas.tick(parts.retargeter.specs)  # poll only this replica's share from the first poll on
    except StoreError as exc:
        log.error("replica %s: coordination failed at start (retried): %s", replicas.name, exc)
    api = build_api(parts, asyncio.get_running_loop())
    app = create_app(parts.metrics, lambda: _readiness(scheduler, parts, replicas), api, ui=config.ui.enabled)
    try:
        server = guarded_server(app, config.http.host, config.http.port, guard)
    except OSError as exc:
        await parts.aclose()
        raise StartupError(f"cannot listen on {config.http.listen}: {exc.strerror}") from None
    scheduler = _scheduler(parts, replicas)
    parts.retargeter.attach(scheduler, api.set_targets if api is not None else None)
    server.start()
    scheduler.start()
    notifier = _start_notifications(parts, lambda: parts.retargeter.leader)
    _install_signal_handlers(stop, guard)
    log.info(
        "schema-drift-monitor %s: replica %s polling %d of %d target(s); metrics on %s://%s:%d/metrics",
        __version__, replicas.name, len(parts.retargeter.polled), len(parts.specs),
        guard.scheme if guard else "http", config.http.host, server.port,
    )  # fmt: skip
    try:
        await stop.wait()
        log.info("stopping: no new polls; finishing running ones")
        await scheduler.shutdown(config.polling.shutdown_grace)
    finally:
        if notifier is not None:
            await notifier.stop()
        await parts.service.flush()  # the last poll times first, then the targets go to the others
        await asyncio.to_thread(replicas.leave)
        await parts.aclose()
        await asyncio.to_thread(server.stop)
    log.info("stopped")
    return 0


@contextlib.contextmanager
def _exclusive(config: Config) -> Iterator[None]:
    """Hold the SQLite file's lock while serving; raises StartupError naming the process that has it."""
    url = config.database.url.get_secret_value()
    lock = sqlite_lock_for(url)
    if lock is None:
        yield
        return
    problem = not_writable(url)  # before the lock file, whose error would only be "[Errno 30] Read-only …"
    if problem is not None:
        raise StartupError(problem)
    try:
        lock.acquire()
    except (DatabaseInUseError, OSError) as exc:
        raise StartupError(str(exc)) from None
    try:
        yield
    finally:
        lock.release()


def _replicas(parts: Components) -> Replicas | SoloReplica:
    """Coordination with the other replicas on PostgreSQL; alone on SQLite."""
    settings = parts.config.ha
    name = replica_name(settings.replica)
    if parts.database.is_sqlite:
        return SoloReplica(name, settings, parts.retargeter, parts.metrics)
    parts.service.replica = name
    return Replicas(name, settings, parts.database.coordination, parts.database.repository, parts.retargeter,
                    parts.metrics)  # fmt: skip


def _scheduler(parts: Components, replicas: Replicas | SoloReplica) -> PollScheduler:
    tick = parts.topology.tick
    retargeter = parts.retargeter

    async def coordinate() -> None:
        try:
            await replicas.tick(retargeter.specs)
        except StoreError as exc:
            log.error("replica %s: coordination failed (the leases run out if this lasts): %s", replicas.name, exc)

    return PollScheduler(
        parts.service,
        retargeter.polled,
        parts.config.database.poll_retention,
        refresh_interval=parts.config.changes.drift_refresh,
        discovery=(tick, retargeter.rediscover) if tick is not None else None,
        coordination=(parts.config.ha.heartbeat, coordinate),
        leader=lambda: retargeter.leader,
    )


def build_api(parts: Components, loop: asyncio.AbstractEventLoop) -> ApiContext | None:
    """The read API's context over ``parts`` (None when ``api.enabled`` is false); acks refresh drift on ``loop``."""
    if not parts.config.api.enabled:
        return None
    context = ApiContext(
        config=parts.config,
        read=ReadModel(parts.config, parts.database),
        intelligence=parts.database.drift,
        on_change=refresh_soon(parts.service, loop),
    )
    context.set_targets(parts.specs)
    return context


def refresh_soon(service: PollService, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """A callable for any thread that schedules ``service.refresh_intelligence()`` on ``loop`` and returns."""

    def schedule() -> None:
        asyncio.run_coroutine_threadsafe(service.refresh_intelligence(), loop)

    return schedule


@dataclass
class _Notifier:
    dispatcher: Dispatcher
    task: asyncio.Task[None]
    stop_event: asyncio.Event

    async def stop(self) -> None:
        """Let a delivery in progress finish (it is bounded by request_timeout), then close."""
        self.stop_event.set()
        await self.task
        await self.dispatcher.aclose()


def _start_notifications(parts: Components, leader: Callable[[], bool]) -> _Notifier | None:
    """The notification loop; with replicas only the leader delivers (the outbox makes it exactly once)."""
    settings = parts.config.notification_settings()  # the UI's permalink as the default link
    if not settings.channels:
        return None
    channels = build_channels(settings, parts.config.changes)
    dispatcher = Dispatcher(settings, parts.database.outbox, parts.metrics, channels, leader=leader)
    stop_event = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop_event), name="notifications")
    log.info("notifications: %d channel(s): %s", len(settings.channels), ", ".join(c.name for c in settings.channels))
    return _Notifier(dispatcher, task, stop_event)


def _readiness(scheduler: PollScheduler, parts: Components, replicas: Replicas | SoloReplica) -> dict[str, bool]:
    """Ready once scheduling and holding this replica's share of the targets."""
    share = replicas.ticked and replicas.ownership.settled
    return {"scheduler": scheduler.running, "share": share, "database": parts.metrics.db_ok}


def _install_signal_handlers(stop: asyncio.Event, guard: Guard | None = None) -> None:
    """First SIGTERM/SIGINT asks for a graceful stop; a second one exits at once. With a ``guard``, SIGHUP
    re-reads the web configuration (on a worker thread: it reads files and loads certificates)."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            log.warning("second signal: exiting now")
            os._exit(128 + signum)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, on_signal, signum)
        except (NotImplementedError, RuntimeError):  # not the main thread (tests) or not POSIX
            return
    if guard is not None:
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.run_in_executor(None, guard.reload, "SIGHUP"))
