"""Series per target in a ``/metrics`` exposition: what a fleet costs the Prometheus that scrapes it.

:func:`series_per_target` reads the text format (0.0.4) itself, without the monitor's code, and counts the
samples that carry the three target labels (``cloud``, ``region``, ``schema``) by sample name; a benchmark
divides by the number of targets it registered. Every other sample (per cloud, per channel, the process) is
counted under :data:`OTHER`, in total, not per target. ``python -m bench.series URL TARGETS`` prints the table
for a running daemon.
"""

from __future__ import annotations

import re
import sys
import urllib.request
from collections import Counter

TARGET_LABELS = frozenset({"cloud", "region", "schema"})
TOTAL = "total"
"""The key of the sum over every per-target sample name."""
OTHER = "other series (not per target)"
"""The key of the count of samples without the three target labels (absolute, not divided)."""
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="(?:[^"\\]|\\.)*"')


def sample_labels(line: str) -> tuple[str, frozenset[str]]:
    """The sample name and the label names of one sample line of the text format."""
    brace = line.find("{")
    space = line.find(" ")
    if brace == -1 or -1 < space < brace:
        return line[:space] if space != -1 else line, frozenset()
    return line[:brace], frozenset(_LABEL.findall(line, brace))


def series_counts(metrics_text: str) -> tuple[Counter[str], int]:
    """Per-target samples by sample name, and the number of the other samples."""
    per_target: Counter[str] = Counter()
    other = 0
    for line in metrics_text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, labels = sample_labels(line)
        if labels >= TARGET_LABELS:
            per_target[name] += 1
        else:
            other += 1
    return per_target, other


def series_per_target(metrics_text: str, targets: int) -> dict[str, float]:
    """Series per target of each per-target sample name, sorted by name, then :data:`TOTAL` and :data:`OTHER`.

    Raises ValueError when ``targets`` is not positive.
    """
    if targets <= 0:
        raise ValueError(f"targets must be positive, got {targets}")
    counts, other = series_counts(metrics_text)
    table = {name: counts[name] / targets for name in sorted(counts)}
    table[TOTAL] = sum(counts.values()) / targets
    table[OTHER] = float(other)
    return table


def format_table(table: dict[str, float]) -> str:
    """The table of :func:`series_per_target` as aligned text, one family a line."""
    width = max(len(name) for name in table)
    return "\n".join(f"{name:<{width}}  {value:g}" for name, value in table.items())


def main(argv: list[str]) -> int:
    """``URL TARGETS``: scrape the URL once and print its series per target."""
    if len(argv) != 2:
        print("usage: python -m bench.series URL TARGETS", file=sys.stderr)
        return 2
    with urllib.request.urlopen(argv[0], timeout=30) as response:
        text = response.read().decode()
    print(format_table(series_per_target(text, int(argv[1]))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
