"""The rules of conditional requests (monitor/poll/conditional.py), pure: what is sent, what is stored."""

from __future__ import annotations

from monitor.domain import TargetKey
from monitor.poll.conditional import MAX_VALIDATOR, UNSTABLE_AFTER, Conditional
from monitor.store.records import Validators

KEY = TargetKey("c", "r1", "images")
URL = "https://api.example/v2/schemas/images"
DOC, NEW_DOC = "a" * 64, "b" * 64
ETAG = '"abc"'
DATE = "Tue, 01 Dec 2026 19:22:57 GMT"


def full(conditional: Conditional, sha: str | None, **headers: str) -> Validators | None:
    """One poll answered 200 with ``headers`` (etag=, last_modified=) that ended with base document ``sha``."""
    names = {"etag": "etag", "last_modified": "last-modified"}
    assert conditional.heard(KEY, 200, {names[name]: value for name, value in headers.items()}) is False
    return conditional.settle(KEY, URL, sha)


def not_modified(conditional: Conditional) -> Validators | None:
    """One poll answered 304 (the base's document)."""
    assert conditional.heard(KEY, 304, {}) is True
    return conditional.settle(KEY, URL, DOC)


def test_validators_are_sent_after_the_first_response_and_stored_once_proven() -> None:
    conditional = Conditional()
    assert conditional.headers(KEY, URL, None) is None
    assert full(conditional, DOC, etag=ETAG, last_modified=DATE) is None  # seen once: not proven yet
    assert conditional.headers(KEY, URL, DOC) == {"If-None-Match": ETAG}  # the date only without an ETag
    assert not_modified(conditional) == Validators(ETAG, DATE)  # a 304 proves them: stored
    assert not_modified(conditional) is None  # stored already: nothing to write
    assert full(conditional, DOC, etag=ETAG, last_modified=DATE) is None  # repeated by a 200: still nothing


def test_a_full_response_repeating_the_validators_proves_them() -> None:
    conditional = Conditional()
    full(conditional, DOC, etag=ETAG)
    assert full(conditional, DOC, etag=ETAG) == Validators(ETAG, None)


def test_a_new_document_brings_its_own_validators_unproven() -> None:
    conditional = Conditional()
    full(conditional, DOC, etag=ETAG)
    not_modified(conditional)
    assert full(conditional, NEW_DOC, etag='"def"') is None  # the new snapshot's row holds none yet
    assert conditional.headers(KEY, URL, NEW_DOC) == {"If-None-Match": '"def"'}
    assert conditional.headers(KEY, URL, DOC) is None  # only for the document they describe
    assert full(conditional, NEW_DOC, etag='"def"') == Validators('"def"', None)


def test_a_failed_or_unconfirmed_poll_learns_nothing() -> None:
    conditional = Conditional()
    full(conditional, DOC, etag=ETAG)
    assert full(conditional, None, etag='"other"') is None
    assert conditional.headers(KEY, URL, DOC) == {"If-None-Match": ETAG}


def test_a_validator_changing_at_every_request_is_dropped_and_never_stored() -> None:
    conditional = Conditional()
    written = [full(conditional, DOC, last_modified=f"Tue, 01 Dec 2026 19:22:{second:02} GMT") for second in range(8)]
    assert written == [None] * 8
    assert conditional.headers(KEY, URL, DOC) is None
    assert full(conditional, NEW_DOC, last_modified=DATE) is None  # useless for this target, whatever the document
    assert conditional.headers(KEY, URL, NEW_DOC) is None


def test_it_takes_so_many_changes_in_a_row_to_drop_a_validator() -> None:
    conditional = Conditional()
    full(conditional, DOC, etag=ETAG)
    for round_ in range(UNSTABLE_AFTER - 1):
        full(conditional, DOC, etag=f'"{round_}"')
    assert conditional.headers(KEY, URL, DOC) == {"If-None-Match": f'"{UNSTABLE_AFTER - 2}"'}
    full(conditional, DOC, etag='"last"')
    assert conditional.headers(KEY, URL, DOC) is None


def test_one_change_under_the_same_document_is_taken_and_proven_again() -> None:
    """A redeploy that touched the file: a new ETag for the same bytes, then stable."""
    conditional = Conditional()
    full(conditional, DOC, etag=ETAG)
    not_modified(conditional)
    assert full(conditional, DOC, etag='"touched"') is None
    assert conditional.headers(KEY, URL, DOC) == {"If-None-Match": '"touched"'}
    assert not_modified(conditional) == Validators('"touched"', None)


def test_last_modified_is_quoted_when_there_is_no_etag_or_it_proved_useless() -> None:
    conditional = Conditional()
    full(conditional, DOC, last_modified=DATE)
    assert conditional.headers(KEY, URL, DOC) == {"If-Modified-Since": DATE}
    for round_ in range(UNSTABLE_AFTER + 1):
        full(conditional, DOC, etag=f'"{round_}"', last_modified=DATE)
    assert conditional.headers(KEY, URL, DOC) == {"If-Modified-Since": DATE}


def test_a_stable_etag_survives_a_last_modified_that_changes_every_time() -> None:
    conditional = Conditional()
    for second in range(UNSTABLE_AFTER + 1):
        full(conditional, DOC, etag=ETAG, last_modified=f"Tue, 01 Dec 2026 19:22:{second:02} GMT")
    assert conditional.headers(KEY, URL, DOC) == {"If-None-Match": ETAG}
    assert full(conditional, DOC, etag=ETAG, last_modified=DATE) == Validators(ETAG, None)


def test_restored_validators_are_sent_at_once_and_not_written_again() -> None:
    conditional = Conditional()
    conditional.restore(KEY, URL, DOC, Validators(ETAG, None))
    assert conditional.headers(KEY, URL, DOC) == {"If-None-Match": ETAG}
    assert not_modified(conditional) is None
    conditional.restore(KEY, URL, DOC, None)
    assert conditional.headers(KEY, URL, DOC) is None


def test_validators_go_only_to_the_url_they_came_from() -> None:
    conditional = Conditional()
    full(conditional, DOC, etag=ETAG)
    assert conditional.headers(KEY, "https://moved.example/v2/schemas/images", DOC) is None


def test_switched_off_nothing_is_sent_or_kept() -> None:
    conditional = Conditional(enabled=False)
    conditional.restore(KEY, URL, DOC, Validators(ETAG, None))
    full(conditional, DOC, etag=ETAG)
    full(conditional, DOC, etag=ETAG)
    assert conditional.headers(KEY, URL, DOC) is None and len(conditional) == 0


def test_a_target_without_validators_keeps_no_state_and_oversized_ones_are_ignored() -> None:
    conditional = Conditional()
    for _ in range(3):
        full(conditional, DOC)
    assert len(conditional) == 0
    full(conditional, DOC, etag='"' + "x" * MAX_VALIDATOR + '"')
    assert conditional.headers(KEY, URL, DOC) is None
