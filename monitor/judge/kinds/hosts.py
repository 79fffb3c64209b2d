"""Hosts never count: removing scheme, host and port from the URLs of a document; pure functions.

Every region of a cloud serves its own host in its links (``https://ecs.cn-north-4.myhuaweicloud.com/v2.1/``
there, ``https://ecs.cn-east-3.myhuaweicloud.com/v2.1/`` next door), and a service behind a proxy that lost
its ``public_endpoint`` setting even serves ``https://None/v2.0``. What a client can call is the path, so
two regions serving the same surface must normalise to the same document: an absolute ``http``/``https``
URL keeps only its path, query and fragment (an empty path becomes ``/``, as HTTP reads it). Relative URLs
(placement's ``href: ""``), URI templates without a scheme and other schemes are left alone. Credentials
in a URL (``https://user:secret@host/``) go with the host.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, Final

HREF_KEYS: Final = frozenset({"href", "href-template"})
"""Object members whose string value is a link (RFC 8288 / json-home)."""

_WEB_SCHEMES: Final = frozenset({"http", "https"})


def strip_host(url: str) -> str:
    """``url`` without scheme, user info, host and port when it is an absolute http(s) URL; else unchanged.

    ``https://ecs.example.com:443/v2.1/?a=1#x`` → ``/v2.1/?a=1#x``; ``https://None`` → ``/``; ``""`` → ``""``.
    A string ``urllib`` cannot split (a broken IPv6 literal) is left as it is.
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url
    if parts.scheme.lower() not in _WEB_SCHEMES or not parts.netloc:
        return url
    return urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, parts.fragment))


def strip_href_hosts(node: Any) -> Any:
    """A copy of ``node`` in which every string value of an ``href``/``href-template`` member, at any depth,
    has lost its host (``strip_host``); every other value is copied as it is."""
    return _map_strings(node, lambda key, text: strip_host(text) if key in HREF_KEYS else text)


def strip_url_hosts(node: Any) -> Any:
    """A copy of ``node`` in which every string value (not object keys) that is an absolute http(s) URL has
    lost its host (``strip_host``). For documents of unknown shape, where any string may be a link."""
    return _map_strings(node, lambda key, text: strip_host(text))


def _map_strings(node: Any, convert: Callable[[str | None, str], str], key: str | None = None) -> Any:
    """A copy of ``node`` with ``convert(member name or None, text)`` applied to every string value."""
    if isinstance(node, Mapping):
        return {name: _map_strings(value, convert, name) for name, value in node.items()}
    if isinstance(node, list):
        return [_map_strings(item, convert, None) for item in node]
    if isinstance(node, str):
        return convert(key, node)
    return node
