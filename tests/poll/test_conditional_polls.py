"""Conditional requests end to end: the simulator sending ETag / Last-Modified and answering 304, the poll
service, the batched writes and a restart, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from monitor.app import Components
from monitor.config import parse_config
from monitor.domain import FailureReason, Severity
from monitor.poll import digest as digest_module
from monitor.poll.fetch import Fetched
from monitor.store.repository import Repository
from monitor.store.tables import Snapshot
from tests.conftest import config_data, full_metrics, make_config
from tests.support.polling import IMAGES, every_row, poll, sample, start, stop
from tests.support.regions import Simulator

PLACEMENT_STYLE = "Tue, 01 Dec 2026 19:22:57 GMT"  # the form of placement's Last-Modified (see docs/operations.md)


@pytest.fixture
def parts(simulator: Simulator, migrated_db_url: str) -> Iterator[Components]:
    components = start(full_metrics(make_config(simulator, migrated_db_url, confirm_delay="0s")))  # polls_total too
    yield components
    stop(components)


def count_hashes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """From now on, every body the service hashes (the first step of comparing one) is appended."""
    hashed: list[bytes] = []
    real = digest_module.raw_digest

    def counting(fetched: Fetched) -> bytes:
        hashed.append(fetched.body)
        return real(fetched)

    monkeypatch.setattr("monitor.poll.service.raw_digest", counting)  # the name the service calls
    return hashed


def count_validator_writes(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """From now on, the validators of every batched write are appended."""
    written: list[Any] = []
    real = Repository.flush_seen

    def counting(self: Repository, seen: Any, fence: Any = None, validators: Any = ()) -> None:
        written.extend(validators)
        real(self, seen, fence, validators)

    monkeypatch.setattr(Repository, "flush_seen", counting)
    return written


def stored_validators(parts: Components) -> list[tuple[str | None, str | None]]:
    """(etag, last_modified) of the target's snapshots, oldest first."""
    query = select(Snapshot.etag, Snapshot.last_modified).order_by(Snapshot.id)
    with parts.database.engine.connect() as conn:
        target_id = parts.service._bases[IMAGES].target_id
        return [(row.etag, row.last_modified) for row in conn.execute(query.where(Snapshot.target_id == target_id))]


def test_a_304_is_an_unchanged_poll_without_body_hash_or_row(
    parts: Components, simulator: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    simulator.set_fault("r1", "validators", etag="content")
    assert poll(parts).first_snapshot
    before = every_row(parts)
    hashed = count_hashes(monkeypatch)

    results = [poll(parts) for _ in range(3)]
    parts.service.housekeeping.flush_now()

    etag = simulator.quoted("r1")[-1][0]
    assert etag is not None and simulator.quoted("r1") == [(None, None)] + [(etag, None)] * 3
    assert all(r.ok and not r.first_snapshot and r.changes == () for r in results)
    assert hashed == []  # no body came, none was hashed
    assert every_row(parts) == before
    assert sample(parts, "schemadrift_poll_success") == 1
    assert sample(parts, "schemadrift_polls_total") == 4
    [snapshot] = Repository(parts.database.engine).snapshots(parts.service._bases[IMAGES].target_id)
    assert snapshot.last_seen == results[-1].started_at  # last seen moves as for any unchanged poll
    assert stored_validators(parts) == [(etag, None)]  # proven by the 304s, written once


def test_a_changed_body_under_the_same_etag_is_caught(parts: Components, simulator: Simulator) -> None:
    simulator.set_fault("r1", "validators", etag='"always-the-same"', honour=False)
    poll(parts)
    poll(parts)
    simulator.mutate("r1")

    result = poll(parts)

    assert simulator.quoted("r1")[-1] == ('"always-the-same"', None)  # quoted, and a body came anyway: it wins
    assert result.ok and {change.severity for change in result.changes} == {Severity.BREAKING, Severity.WARNING}
    assert sample(parts, "schemadrift_changes_total", severity="breaking") == 1


def test_last_modified_alone_is_quoted_as_if_modified_since(parts: Components, simulator: Simulator) -> None:
    simulator.set_fault("r1", "validators", last_modified=PLACEMENT_STYLE)
    poll(parts)
    results = [poll(parts) for _ in range(2)]
    parts.service.housekeeping.flush_now()

    assert simulator.quoted("r1") == [(None, None), (None, PLACEMENT_STYLE), (None, PLACEMENT_STYLE)]
    assert all(r.ok and r.changes == () for r in results)
    assert stored_validators(parts) == [(None, PLACEMENT_STYLE)]


def test_the_first_poll_after_a_restart_revalidates_from_stored_validators(
    simulator: Simulator, migrated_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    simulator.set_fault("r1", "validators", etag="content")
    config = make_config(simulator, migrated_db_url)
    first = start(config)
    poll(first)
    poll(first)  # a 304: proven, written at the stop's flush
    stop(first)

    second = start(config)
    try:
        hashed = count_hashes(monkeypatch)
        result = poll(second)
        assert result.ok and not result.first_snapshot and hashed == []
        assert simulator.quoted("r1")[-1] == simulator.quoted("r1")[-2] != (None, None)
        assert sample(second, "schemadrift_poll_success") == 1
    finally:
        stop(second)


def test_a_last_modified_changing_at_every_request_costs_no_write_and_stops_being_sent(
    parts: Components, simulator: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = count_validator_writes(monkeypatch)
    simulator.set_fault("r1", "validators", last_modified="per_request")

    results = []
    for _ in range(6):
        results.append(poll(parts))
        parts.service.housekeeping.flush_now()

    quoted = [since for _, since in simulator.quoted("r1")]
    assert quoted[0] is None and quoted[1] is not None and quoted[2] is not None  # two tries, then dropped
    assert quoted[3:] == [None, None, None]
    assert all(r.ok for r in results) and written == [] and stored_validators(parts) == [(None, None)]


def test_a_304_to_a_request_without_validators_is_a_failure(parts: Components, simulator: Simulator) -> None:
    simulator.set_fault("r1", "not_modified")
    never_polled = poll(parts)  # nothing stored yet that a 304 could refer to
    simulator.set_fault("r1", None)
    poll(parts)  # a first snapshot, from a server that sends no validators
    simulator.set_fault("r1", "not_modified")
    unasked = poll(parts)

    for result in (never_polled, unasked):
        assert not result.ok and result.reason is FailureReason.HTTP_OTHER and result.http_status == 304
        assert result.error is not None and "304 Not Modified" in result.error
    assert sample(parts, "schemadrift_poll_success") == 0
    assert stored_validators(parts) == [(None, None)]


def test_polling_conditional_false_never_quotes_a_validator(simulator: Simulator, migrated_db_url: str) -> None:
    simulator.set_fault("r1", "validators", etag="content", last_modified=PLACEMENT_STYLE)
    parts = start(parse_config({**config_data(simulator, migrated_db_url), "polling": {"conditional": False}}, "t"))
    try:
        results = [poll(parts) for _ in range(3)]
    finally:
        stop(parts)
    assert all(r.ok for r in results) and simulator.quoted("r1") == [(None, None)] * 3
