"""Which replica polls which target: rendezvous hashing with bounded loads. Pure, stdlib only.

Every replica computes the same answer from the same inputs (the live replicas the database reports and
the target ids), so no replica has to tell another what to poll; the leases in
:mod:`monitor.store.coordination` only make sure two replicas never act on one target at once.

How: each target ranks every replica by ``blake2b(target_id, replica)`` (rendezvous or
highest-random-weight hashing: a replica's arrival or departure only changes the rankings' top for the
targets that prefer it). Plain rendezvous hashing is uneven for small counts, so the loads are bounded: a stable
matching (Gale-Shapley: targets propose in their ranking order, a full replica keeps the targets that
rank it highest) with ``floor(N / R)`` places per replica, then a second one, with one more place each,
for the fewer than ``R`` targets left over.

* deterministic — a target-optimal stable matching is unique, so it depends neither on the order of the
  inputs nor on that of the proposals; the hash is hashlib's, not Python's per-process randomised
  ``hash()``;
* even — every replica gets ``floor(N / R)`` or ``ceil(N / R)`` targets (within ±20 % of its share
  whenever ``N / R >= 5``);
* stable — a target only moves when its preferred replicas changed or filled up: a leaving replica's
  targets move, plus the few its departure lets return to a replica they prefer; a joining replica
  takes its share plus a little reshuffling (``tests/test_ownership.py`` measures both bounds).
"""

from __future__ import annotations

import hashlib
import heapq
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence

__all__ = ["assign", "capacity", "score"]

Matching = tuple[dict[int, str], list[int]]


def score(target_id: int, replica: str) -> int:
    """The rendezvous weight of ``replica`` for ``target_id`` (64 bits, the same in every process)."""
    digest = hashlib.blake2b(f"{target_id}\x00{replica}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def capacity(targets: int, replicas: int) -> int:
    """The most targets one replica is given: ``ceil(targets / replicas)``."""
    return -(-targets // replicas) if replicas else 0


def assign(target_ids: Sequence[int], replicas: Sequence[str]) -> dict[int, str]:
    """Map every target id to one replica; empty when there are no replicas.

    Duplicates in either input are ignored and the order of the inputs does not matter. Every replica
    gets ``floor(N / R)`` or ``ceil(N / R)`` targets.
    """
    targets = sorted(set(target_ids))
    names = sorted(set(replicas))
    if not names:
        return {}
    rankings = {t: _ranking(t, names) for t in targets}
    placed, left_over = _match(targets, rankings, len(targets) // len(names))
    extra, unplaced = _match(left_over, rankings, 1)  # fewer than R left: at most one more each
    assert not unplaced, "R slots for fewer than R targets"
    return placed | extra


def _match(targets: Sequence[int], rankings: Mapping[int, Sequence[tuple[int, str]]], limit: int) -> Matching:
    """Targets propose down their rankings; a replica keeps the ``limit`` that rank it highest.

    Returns the (target-optimal, hence unique) stable matching and the targets every replica refused,
    sorted.
    """
    held: dict[str, list[tuple[int, int]]] = defaultdict(list)  # min-heap of (score, target) per replica
    proposals = dict.fromkeys(targets, 0)
    free = deque(targets)
    refused = []
    while free:
        target = free.popleft()
        ranking = rankings[target]
        if proposals[target] == len(ranking):
            refused.append(target)
            continue
        replica_score, replica = ranking[proposals[target]]
        proposals[target] += 1
        heapq.heappush(held[replica], (replica_score, target))
        if len(held[replica]) > limit:  # full: the target that ranks this replica lowest moves on
            free.append(heapq.heappop(held[replica])[1])
    return {target: name for name, heap in held.items() for _, target in heap}, sorted(refused)


def _ranking(target_id: int, names: Sequence[str]) -> list[tuple[int, str]]:
    """The replicas in ``target_id``'s order of preference, with their scores (ties by name)."""
    return sorted(((score(target_id, name), name) for name in names), key=lambda pair: (-pair[0], pair[1]))
