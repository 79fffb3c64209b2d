"""Conditional requests: which validators a target's next request quotes, and which are worth storing.

A server that sends ``ETag`` or ``Last-Modified`` with a document (nginx and CDNs do for static files; none of
the OpenStack documents we have seen do, see docs/operations.md) answers a request that quotes them
(``If-None-Match``, ``If-Modified-Since``) with ``304 Not Modified`` and no body while the document is the
same: the poll costs a response head instead of the document, and no hash. :class:`Conditional` keeps what is
known per target and is pure (no I/O, no clock): the service asks it what to send (:meth:`~Conditional.headers`),
tells it what came back (:meth:`~Conditional.heard`) and how the poll ended (:meth:`~Conditional.settle`),
and stores what that returns.

The rules:

* ``If-None-Match`` is sent when the server sent an ETag, else ``If-Modified-Since`` (never both: a server
  that has an ETag compares that and ignores the date);
* validators belong to the document of the target's comparison base: they are taken from the response whose
  document became the base (or already was), never from a read that failed or was not confirmed, and are
  sent only to the URL they came from, only while that document is the base;
* a 304 is the base's document: an unchanged poll. A body, when one is sent, is always hashed and compared,
  whatever validators came with it: a changed document under an unchanged ETag is caught like any other;
* validators are *proven* when a 304 answers them or a full response of the same document repeats them; only
  proven ones are stored (on the snapshot's row, batched with the poll times), and only when they differ from
  what is stored: an unchanged poll writes nothing, and the first poll after a restart quotes them;
* a validator that changed while the document did not, on :data:`UNSTABLE_AFTER` polls in a row (placement's
  ``Last-Modified`` is the time of each request), is useless: it is dropped for that target and neither sent
  nor stored again while the process runs. It is never proven, so it never costs a write; after a restart it
  costs :data:`UNSTABLE_AFTER` requests carrying one header each before it is dropped again. (One change
  alone is a redeploy that touched the file: the new value is taken.)
* values longer than :data:`MAX_VALIDATOR` characters are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from monitor.domain import TargetKey
from monitor.store.records import Validators

NOT_MODIFIED: Final = 304
UNSTABLE_AFTER: Final = 2
"""Polls in a row on which a validator changed while the document did not, after which it is dropped."""
MAX_VALIDATOR: Final = 512

_WAS_304: Final = Validators("304", "304")  # what :meth:`Conditional.heard` keeps for a 304 (compared by identity)


@dataclass(slots=True)
class _Target:
    """What is known of one target's validators: their values for the document ``sha256`` at ``url``,
    whether they are proven, what the database holds for that document, and which proved useless."""

    url: str
    sha256: str
    etag: str | None = None
    last_modified: str | None = None
    proven: bool = False
    stored: Validators | None = None
    etag_strikes: int = 0
    modified_strikes: int = 0
    etag_unstable: bool = False
    modified_unstable: bool = False
    request: dict[str, str] | None = None  # the conditional headers, made once per change of the values

    def renew(self, url: str, sha256: str) -> None:
        """Another document (or URL): nothing known of its validators yet; the useless ones stay useless."""
        if sha256 != self.sha256:
            self.stored = None  # a new snapshot: nothing stored on its row yet
        self.url, self.sha256 = url, sha256
        self.etag = self.last_modified = self.request = None
        self.proven = False
        self.etag_strikes = self.modified_strikes = 0

    def update(self, heard: Validators) -> None:
        """A full response of the same document came with ``heard``: proven when it repeats the values."""
        before = (self.etag, self.last_modified)
        new_etag = None if self.etag_unstable else heard.etag
        new_modified = None if self.modified_unstable else heard.last_modified
        self.etag, self.etag_strikes, etag_unstable = _step(self.etag, new_etag, self.etag_strikes)
        self.last_modified, self.modified_strikes, modified_unstable = _step(
            self.last_modified, new_modified, self.modified_strikes
        )
        self.etag_unstable |= etag_unstable
        self.modified_unstable |= modified_unstable
        after = (self.etag, self.last_modified)
        self.proven = after == before and after != (None, None)
        if after != before:
            self.request = _request(self.etag, self.last_modified)

    def to_store(self) -> Validators | None:
        """The proven validators when the database does not hold them yet (then it is taken to), else None."""
        stored = self.stored
        if not self.proven or (stored and stored.etag == self.etag and stored.last_modified == self.last_modified):
            return None  # compared field by field: nothing is allocated on the usual path
        self.stored = Validators(self.etag, self.last_modified)
        return self.stored


def _step(old: str | None, new: str | None, strikes: int) -> tuple[str | None, int, bool]:
    """One validator's next value, its strikes (changes in a row while the document did not) and whether
    it is useless now (its value is then None)."""
    if new is None or old is None or new == old:
        return new, 0, False
    strikes += 1
    if strikes >= UNSTABLE_AFTER:
        return None, strikes, True
    return new, strikes, False


def _request(etag: str | None, last_modified: str | None) -> dict[str, str] | None:
    """The conditional headers: ``If-None-Match`` when there is an ETag (a server that has both compares that
    one and ignores ``If-Modified-Since``, RFC 9110 13.2.2: 50 bytes saved), else ``If-Modified-Since``."""
    if etag is not None:
        return {"If-None-Match": etag}
    if last_modified is not None:
        return {"If-Modified-Since": last_modified}
    return None


def _bounded(value: str | None) -> str | None:
    return value if value is not None and 0 < len(value) <= MAX_VALIDATOR else None


class Conditional:
    """The validators of every target (see the module docstring); ``enabled=False`` never sends any.

    Not thread-safe per target: one poll of a target at a time (the service's per-target lock). A target
    that never sent validators costs a dictionary look-up per poll and no memory.
    """

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._targets: dict[TargetKey, _Target] = {}
        self._heard: dict[TargetKey, Validators] = {}  # the last response of the poll in progress

    def restore(self, key: TargetKey, url: str, sha256: str | None, stored: Validators | None) -> None:
        """Start from what the database holds for the target's current document (a start, a returning
        target, a reload after another writer's snapshot): ``stored`` were proven for document ``sha256``."""
        self._targets.pop(key, None)
        if self.enabled and sha256 is not None and stored is not None:
            target = _Target(url, sha256, stored.etag, stored.last_modified, proven=True, stored=stored)
            target.request = _request(stored.etag, stored.last_modified)
            self._targets[key] = target

    def headers(self, key: TargetKey, url: str, sha256: str | None) -> Mapping[str, str] | None:
        """The conditional headers for a request of ``url`` while the base's document is ``sha256``; None
        when there are none to send (nothing known, another URL or another document)."""
        target = self._targets.get(key)
        if target is None or target.url != url or target.sha256 != sha256:
            return None
        return target.request

    def heard(self, key: TargetKey, status: int, headers: Mapping[str, str]) -> bool:
        """A response of the poll in progress (``headers`` with lower-case names); True for a 304 (the base's
        document: nothing to read or hash). The last one of a poll counts at :meth:`settle`."""
        if status == NOT_MODIFIED:
            self._heard[key] = _WAS_304
            return True
        if not self.enabled:
            return False
        etag, modified = headers.get("etag"), headers.get("last-modified")
        if etag is not None or modified is not None or key in self._targets:
            self._heard[key] = Validators(_bounded(etag), _bounded(modified))
        return False

    def settle(self, key: TargetKey, url: str, sha256: str | None) -> Validators | None:
        """The poll of ``key`` ended with its base's document ``sha256`` — None when the poll failed, its read
        was not confirmed or did not become the base: nothing is learnt. Returns the validators to store on
        the base's snapshot, None when there is nothing to write (the usual answer)."""
        heard = self._heard.pop(key, None)
        if heard is None or sha256 is None:
            return None
        target = self._targets.get(key)
        if heard is _WAS_304:
            if target is None:
                return None
            target.proven = True
            return target.to_store()
        if target is None:
            target = self._targets[key] = _Target(url, sha256)
        elif target.sha256 != sha256 or target.url != url:
            target.renew(url, sha256)
        target.update(heard)
        return target.to_store()

    def __len__(self) -> int:
        """How many targets have validators (or useless ones) known."""
        return len(self._targets)
