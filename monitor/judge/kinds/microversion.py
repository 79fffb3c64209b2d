"""OpenStack microversions as an ordered type; pure, standard library only.

A microversion is ``MAJOR.MINOR`` (API-WG's microversion specification), and its parts compare as numbers:
``2.9 < 2.10 < 2.100`` and ``1.96 < 1.111``, where comparing the strings or the floats both go wrong (across
real releases ironic went 1.82 → 1.96 → 1.111 and nova 2.95 → 2.96 → 2.100). Discovery documents write "no
microversions" as a missing key, ``null`` or ``""`` (nova's v2.0 entry); ``Microversion.parse`` turns all of
these into ``None``, as keystoneauth's ``Discover.version_data`` does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

_MICROVERSION: Final = re.compile(r"([0-9]+)\.([0-9]+)")  # ASCII digits: \d would take any script's digits


@dataclass(frozen=True, order=True, slots=True)
class Microversion:
    """One microversion; instances order by ``(major, minor)`` as numbers."""

    major: int
    minor: int

    @classmethod
    def parse(cls, value: str | None) -> Microversion | None:
        """The microversion ``value`` names, or ``None`` for "no microversion" (``None``, ``""`` or blanks).

        Surrounding whitespace is ignored. Raises ``ValueError`` for anything else that is not
        ``MAJOR.MINOR`` in decimal digits (``"latest"``, ``"2"``, ``"v2.1"``, ``"2.1.3"``, ``"2.x"``).
        """
        if value is None or not value.strip():
            return None
        return cls.from_string(value)

    @classmethod
    def from_string(cls, text: str) -> Microversion:
        """The microversion ``text`` names; raises ``ValueError`` unless it is ``MAJOR.MINOR`` (blanks around
        allowed). Unlike ``parse``, an empty string is an error."""
        match = _MICROVERSION.fullmatch(text.strip())
        if match is None:
            raise ValueError(f"not a microversion (MAJOR.MINOR): {text[:32]!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        """``MAJOR.MINOR`` without leading zeros: the canonical spelling (``"2.01"`` reads back as ``"2.1"``)."""
        return f"{self.major}.{self.minor}"


def canonical_microversion(value: str | None) -> str | None:
    """``value`` in canonical spelling, ``None`` for "no microversion"; raises ``ValueError`` like ``parse``."""
    parsed = Microversion.parse(value)
    return None if parsed is None else str(parsed)
