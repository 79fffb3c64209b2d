"""Where the tests find things, whatever folder a test module sits in."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository root."""

DATA = ROOT / "tests" / "data"
"""The tests' data files: diff and surface cases, real OpenStack documents, Grafana replica cases."""
