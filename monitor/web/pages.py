"""What each page of the web UI shows, arranged from the read model's answers; layout only.

Every fact comes from :class:`monitor.read.model.ReadModel` (a target's flags from ``TargetView``, a region's
deviation from ``RegionView``, changes from ``Comparison``); this module only groups, orders and names them
for the templates. Paths are relative to ``/ui/`` (``targets/<cloud>/<region>/<schema>``), each label
percent-encoded as one path segment; the templates put the page's way back to ``/ui/`` in front.

A tile on the overview leads with what an on-call engineer needs first: the worst unacknowledged severity
("breaking", "warning"...) with the counts, then how the region stands against its fleet in words
(:func:`monitor.fleet.rules.standing`: "same as reference", "ahead of the fleet", "not yet on the new
version", "differs from the reference"), then whatever else applies (failing with the reason, stale,
flapping, not polled yet), each with a symbol and a word besides its colour; "ok" when nothing does. A region
that did not change never says "rollout": a rollout in progress is its group's, counted once per group and
named on the compare page. The tile's colour is that of its first status (:data:`STATUSES` order).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote, urlencode

from monitor.domain import Change, Severity, TargetKey
from monitor.fleet.rules import Standing
from monitor.judge.regions import MAJORITY, RegionComparison, Variant
from monitor.read.model import DriftItem, RegionView, TargetView, poll_order
from monitor.read.records import ChangeRecord, SnapshotRecord, TransitionRecord
from monitor.read.reports import Comparison, short_json
from monitor.web import aligned

VALUE_WIDTH: Final = 80


@dataclass(frozen=True, slots=True)
class Status:
    """A target status: ``name`` (CSS class and ``status`` filter value), ``symbol`` and ``label`` (so it
    never depends on colour alone) and what it means; a ``group`` status is its (cloud, schema)'s, counted
    once per group and never said by a tile."""

    name: str
    symbol: str
    label: str
    meaning: str
    group: bool = False


STATUSES: Final = (
    Status("failing", "✕", "failing", "its last polls fail"),
    Status("stale", "◷", "stale", "no successful poll for two intervals, although no poll failed"),
    Status("breaking", "‼", "breaking", "a breaking change since its baseline that nobody acknowledged"),
    Status("drift", "!", "unacknowledged drift", "changes since its baseline that nobody acknowledged"),
    Status("deviating", "≠", "deviating", "serves another document than its cloud's reference"),
    Status("flapping", "↯", "flapping", "its document keeps changing back and forth"),
    Status("rollout", "↻", "rollout in progress",
           "a change is spreading across the regions of a cloud (counted per cloud and schema)", group=True),
    Status("pending", "…", "not polled yet", "registered, no poll finished yet"),
    Status("ok", "✓", "ok", "polls succeed, nothing to look at"),
)  # fmt: skip
STATUS: Final = {status.name: status for status in STATUSES}
CONDITIONS: Final = ("failing", "stale", "flapping", "pending")
"""The statuses a tile names after its severity and standing (the others are said by those)."""
SEVERITY_SYMBOLS: Final = {Severity.BREAKING: "‼", Severity.WARNING: "!", Severity.INFO: "i", Severity.COSMETIC: "·"}


def segment(label: str) -> str:
    """``label`` as one URL path segment."""
    return quote(label, safe="")


def target_path(key: TargetKey) -> str:
    """The target page, relative to ``/ui/``."""
    return f"targets/{segment(key.cloud)}/{segment(key.region)}/{segment(key.schema)}"


def compare_path(cloud: str, schema: str) -> str:
    """The compare page of a (cloud, schema), relative to ``/ui/``."""
    return f"compare/{segment(cloud)}/{segment(schema)}"


def against_path(key: TargetKey, other: TargetKey) -> str:
    """The diff of ``other``'s current document (old side) against ``key``'s, relative to ``/ui/``."""
    return f"{target_path(key)}/against/{segment(other.cloud)}/{segment(other.region)}"


def flags(view: TargetView) -> tuple[Status, ...]:
    """Every status of the target itself that applies, most urgent first (``ok`` when none does); the group's
    rollout is not one (:data:`STATUSES`)."""
    applies = {
        "failing": view.state.last_poll_ok is False,
        "stale": view.stale,
        "breaking": view.unacknowledged.get(Severity.BREAKING, 0) > 0,
        "drift": any(view.unacknowledged.values()),
        "deviating": view.deviates,
        "flapping": view.flapping,
        "pending": view.state.last_poll_ok is None,
    }
    found = tuple(STATUS[name] for name, yes in applies.items() if yes)
    return found or (STATUS["ok"],)


def drift_text(counts: Mapping[Severity, int]) -> str:
    """``"1 breaking, 2 warning"`` for the non-zero counts, worst first; empty without drift."""
    return ", ".join(f"{counts[s]} {s.value}" for s in Severity if counts.get(s))


def worst_unacknowledged(counts: Mapping[Severity, int]) -> Severity | None:
    """The worst severity with a non-zero count (None without drift)."""
    return next((s for s in Severity if counts.get(s)), None)


# --- overview ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TileLine:
    """One line of a tile: ``kind`` its CSS class (``sev-breaking``, ``st-failing``, ``standing``...), a symbol
    and words, and a ``detail`` in smaller type."""

    kind: str
    symbol: str
    text: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Tile:
    """One target on the overview grid; ``dim`` when it does not match the status filter."""

    view: TargetView
    statuses: tuple[Status, ...]
    dim: bool = False

    @property
    def status(self) -> Status:
        return self.statuses[0]

    @property
    def path(self) -> str:
        return target_path(self.view.key)

    @property
    def lines(self) -> tuple[TileLine, ...]:
        """What the tile says, in order (module doc): the worst unacknowledged severity, the standing, then the
        other conditions; without a severity the conditions lead; "ok" when nothing needs a look."""
        view = self.view
        worst = worst_unacknowledged(view.unacknowledged)
        standing = _standing_line(view.standing)
        conditions = tuple(_condition_line(status, view) for status in self.statuses if status.name in CONDITIONS)
        if worst is not None:
            detail = f"{drift_text(view.unacknowledged)} unacknowledged"
            return (TileLine(f"sev-{worst.value}", SEVERITY_SYMBOLS[worst], worst.value, detail), *standing,
                    *conditions)  # fmt: skip
        if conditions or view.deviates:
            return (*conditions, *standing)
        return (TileLine("st-ok", STATUS["ok"].symbol, STATUS["ok"].label), *standing)


def _standing_line(standing: Standing | None) -> tuple[TileLine, ...]:
    """The tile line of a standing (none without a document): ``≠`` when away from the reference."""
    if standing is None:
        return ()
    if standing is Standing.SAME:
        return (TileLine("standing", "=", standing.value),)
    return (TileLine("standing away", "≠", standing.value),)


def _condition_line(status: Status, view: TargetView) -> TileLine:
    reason = f": {view.reason.value}" if status.name == "failing" and view.reason else ""
    return TileLine(f"st-{status.name}", status.symbol, status.label + reason)


@dataclass(frozen=True, slots=True)
class Group:
    """One (cloud, schema): its regions as tiles."""

    cloud: str
    schema: str
    tiles: tuple[Tile, ...]

    @property
    def compare_path(self) -> str:
        return compare_path(self.cloud, self.schema)


@dataclass(frozen=True, slots=True)
class Overview:
    """The grid, per cloud; ``counts`` per status over the targets of the chosen cloud (all: None)."""

    clouds: tuple[str, ...]
    sections: tuple[tuple[str, tuple[Group, ...]], ...]
    counts: tuple[tuple[Status, int], ...]
    total: int
    cloud: str | None
    status: Status | None


def overview(views: Sequence[TargetView], clouds: Sequence[str], cloud: str | None, status: str | None) -> Overview:
    """The overview of ``views`` for the filters; raises ValueError for an unknown cloud or status."""
    if cloud is not None and cloud not in clouds:
        raise ValueError(f"cloud must be one of: {', '.join(clouds)}")
    if status is not None and status not in STATUS:
        raise ValueError(f"status must be one of: {', '.join(STATUS)}")
    chosen = STATUS[status] if status else None
    shown = [view for view in views if cloud is None or view.key.cloud == cloud]
    tiles = [Tile(view, flags(view)) for view in shown]
    counts = tuple((s, _count(s, tiles)) for s in STATUSES)
    return Overview(tuple(clouds), _sections(tiles, chosen), counts, len(tiles), cloud, chosen)


def _count(status: Status, tiles: Sequence[Tile]) -> int:
    """How many targets have ``status``; for a group status (a rollout), how many (cloud, schema) groups."""
    if status.group:
        return len({(t.view.key.cloud, t.view.key.schema) for t in tiles if _matches(t, status)})
    return sum(1 for t in tiles if status in t.statuses)


def _matches(tile: Tile, status: Status) -> bool:
    """Whether ``tile`` matches the status filter: it has the status, or its group has a group status."""
    return tile.view.rollout if status.group else status in tile.statuses


def _sections(tiles: Iterable[Tile], chosen: Status | None) -> tuple[tuple[str, tuple[Group, ...]], ...]:
    """Tiles grouped by cloud, then schema; with a status filter, only groups with a match, others dimmed."""
    grouped: dict[str, dict[str, list[Tile]]] = {}
    for tile in tiles:
        dimmed = Tile(tile.view, tile.statuses, dim=chosen is not None and not _matches(tile, chosen))
        grouped.setdefault(tile.view.key.cloud, {}).setdefault(tile.view.key.schema, []).append(dimmed)
    sections = []
    for cloud, schemas in grouped.items():
        groups = tuple(
            Group(cloud, schema, tuple(members))
            for schema, members in sorted(schemas.items())
            if not all(t.dim for t in members)
        )
        if groups:
            sections.append((cloud, groups))
    return tuple(sections)


# --- diff ----------------------------------------------------------------------------------------------

VIEWS: Final = {"split": "side by side", "unified": "unified"}
"""The layouts of a diff (``?view=``): two columns aligned row by row, or one column, old lines above new."""


@dataclass(frozen=True, slots=True)
class ChangeRow:
    """A change table row; ``href`` is the fragment of the diff row that shows it (None: not shown)."""

    change: Change
    href: str | None

    @property
    def old(self) -> str:
        return short_json(self.change.old, VALUE_WIDTH)

    @property
    def new(self) -> str:
        return short_json(self.change.new, VALUE_WIDTH)


@dataclass(frozen=True)
class SnapshotChoice:
    """The two snapshots a diff is between, and the target's snapshots to choose others from."""

    snapshots: tuple[SnapshotRecord, ...]
    from_id: int
    to_id: int


@dataclass(frozen=True)
class Diff:
    """A diff page: the change table (worst first) and the aligned rows of the two documents (old on the left).

    ``focus`` is the path of the change a permalink names, ``focused`` the indices of the rows that show it;
    ``view`` the layout (:data:`VIEWS`) and ``params`` the page's other query parameters, kept by the switch.
    """

    key: TargetKey
    title: str
    old_label: str
    new_label: str
    rows: tuple[ChangeRow, ...]
    lines: tuple[aligned.Row, ...]
    choice: SnapshotChoice | None = None
    focus: str | None = None
    focused: frozenset[int] = frozenset()
    view: str = "split"
    params: tuple[tuple[str, str], ...] = ()

    @property
    def target_path(self) -> str:
        return target_path(self.key)

    def view_query(self, view: str) -> str:
        """The query of this page in layout ``view`` (the fragment is the browser's to keep)."""
        return "?" + urlencode((*self.params, ("view", view)))


def diff(
    key: TargetKey,
    comparison: Comparison,
    labels: tuple[str, str],
    choice: SnapshotChoice | None = None,
    focus: str | None = None,
    view: str = "split",
    params: Sequence[tuple[str, str]] = (),
) -> Diff:
    """The diff page of ``comparison`` (``labels``: what the old and the new side are; ``focus``: the path of
    the change a permalink names; ``view``: a key of :data:`VIEWS`, else ValueError)."""
    if view not in VIEWS:
        raise ValueError(f"view must be one of: {', '.join(VIEWS)}")
    laid_out = aligned.align(comparison.old, comparison.new, comparison.changes)
    rows = tuple(
        ChangeRow(change, f"#{anchor}" if anchor else None)
        for change, anchor in zip(comparison.changes, laid_out.anchors, strict=True)
    )
    focused = frozenset(i for i, row in enumerate(laid_out.rows) if focus is not None and row.covered_by(focus))
    return Diff(key, comparison.title, labels[0], labels[1], rows, laid_out.rows, choice, focus, focused, view,
                tuple(params))  # fmt: skip


# --- target --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SnapshotRow:
    """A snapshot on the target's timeline; ``previous`` is the id of the one before (None: the first)."""

    snapshot: SnapshotRecord
    previous: int | None
    baseline: bool
    current: bool


@dataclass(frozen=True)
class TargetPage:
    """The target page: state, drift (None: no snapshot yet), timeline newest first, changes, transitions."""

    view: TargetView
    statuses: tuple[Status, ...]
    drift: tuple[DriftItem, ...] | None
    timeline: tuple[SnapshotRow, ...]
    changes: tuple[ChangeRecord, ...]
    transitions: tuple[TransitionRecord, ...]
    neighbours: tuple[TargetKey, ...] = field(default=())

    @property
    def path(self) -> str:
        return target_path(self.view.key)

    @property
    def compare_path(self) -> str:
        return compare_path(self.view.key.cloud, self.view.key.schema)

    def against(self, other: TargetKey) -> str:
        return against_path(self.view.key, other)


def target_page(
    view: TargetView,
    drift: Sequence[DriftItem] | None,
    snapshots: Sequence[SnapshotRecord],
    changes: Sequence[ChangeRecord],
    transitions: Sequence[TransitionRecord],
    neighbours: Sequence[TargetKey],
) -> TargetPage:
    """The target page; ``snapshots``, ``changes`` and ``transitions`` come oldest first (as the read model
    returns them) and are shown newest first (the changes of one poll worst first, :func:`poll_order`)."""
    baseline = view.baseline.snapshot_id if view.baseline else None
    rows = [
        SnapshotRow(s, snapshots[i - 1].id if i else None, s.id == baseline, s.id == view.state.snapshot_id)
        for i, s in enumerate(snapshots)
    ]
    return TargetPage(
        view, flags(view), tuple(drift) if drift is not None else None, tuple(reversed(rows)),
        tuple(poll_order(changes, newest_first=True)), tuple(reversed(transitions)), tuple(neighbours),
    )  # fmt: skip


# --- compare -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MatrixRow:
    """A region of the matrix: the variant it serves (None: no document) and whether it deviates."""

    label: str
    key: TargetKey
    variant: Variant | None
    deviates: bool

    @property
    def path(self) -> str:
        return target_path(self.key)


@dataclass(frozen=True)
class Deviation:
    """A deviating region: its changes against the reference, and its side-by-side diff."""

    label: str
    rows: tuple[ChangeRow, ...]
    against: str | None


@dataclass(frozen=True)
class ComparePage:
    view: RegionView
    rows: tuple[MatrixRow, ...]
    deviations: tuple[Deviation, ...]

    @property
    def comparison(self) -> RegionComparison:
        return self.view.comparison

    def variant_id(self, variant: Variant) -> str:
        return self.view.comparison.variant_id(variant, marked=False)

    def is_reference(self, variant: Variant) -> bool:
        return variant.sha256 == self.view.comparison.reference


def compare_page(view: RegionView) -> ComparePage:
    """The compare page of ``view``: the region-by-document matrix and each deviating region's changes."""
    comparison = view.comparison
    keys = {label: _label_key(view, label) for label in view.labels}
    rows = tuple(
        MatrixRow(label, keys[label], comparison.variant_of(label), label in comparison.deviating)
        for label in view.labels
    )
    reference = _reference_region(comparison)
    deviations = []
    for label, changes in view.deviations:
        against = against_path(keys[label], keys[reference]) if reference in keys else None
        deviations.append(Deviation(label, _rows(changes, against), against))
    return ComparePage(view, rows, tuple(deviations))


def _label_key(view: RegionView, label: str) -> TargetKey:
    """A matrix label (``region``, or ``cloud/region`` when clouds are compared) as a target."""
    if view.other_cloud is None:
        return TargetKey(view.cloud, label, view.schema)
    cloud, region = label.split("/", 1)
    return TargetKey(cloud, region, view.schema)


def _reference_region(comparison: RegionComparison) -> str:
    """The region to diff against: the chosen reference, or the majority's first region."""
    if comparison.reference_label != MAJORITY:
        return comparison.reference_label
    return comparison.reference_variant.regions[0]


def _rows(comparison: Comparison, against: str | None) -> tuple[ChangeRow, ...]:
    """A deviation's change rows, each linking to the row of the region diff that shows it."""
    if against is None:
        return tuple(ChangeRow(change, None) for change in comparison.changes)
    anchors = aligned.align(comparison.old, comparison.new, comparison.changes).anchors
    return tuple(
        ChangeRow(change, f"{against}#{anchor}" if anchor else against)
        for change, anchor in zip(comparison.changes, anchors, strict=True)
    )
