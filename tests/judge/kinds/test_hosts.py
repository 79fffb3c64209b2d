"""Hosts never count: stripping scheme, host and port from links."""

from __future__ import annotations

import pytest

from monitor.judge.kinds.hosts import strip_host, strip_href_hosts, strip_url_hosts


@pytest.mark.parametrize(
    ("url", "stripped"),
    [
        ("https://ecs.cn-north-4.myhuaweicloud.com/v2.1/", "/v2.1/"),
        ("http://127.0.0.1:19500/v2/", "/v2/"),
        ("https://None/v2.0", "/v2.0"),
        ("HTTPS://Compute.Example.COM:8774/v2.1", "/v2.1"),
        ("http://[::1]:8774/v2.1/?a=1#frag", "/v2.1/?a=1#frag"),
        ("https://user:secret@example.com/v3/", "/v3/"),
        ("https://docs.openstack.org", "/"),
    ],
)
def test_an_absolute_http_url_keeps_only_its_path_query_and_fragment(url: str, stripped: str) -> None:
    assert strip_host(url) == stripped


@pytest.mark.parametrize(
    "text", ["", "/v2.1/", "v2.1", "{self}", "ftp://example.com/x", "mailto:ops@example.com", "http://[::1", "//h/x"]
)
def test_relative_urls_templates_and_other_schemes_are_left_alone(text: str) -> None:
    assert strip_host(text) == text


def test_only_href_members_lose_their_hosts_in_a_keyed_document() -> None:
    doc = {
        "links": [{"rel": "self", "href": "https://a.example.com/v1/"}],
        "namespace": "http://docs.openstack.org/ext/x/api/v1",
        "nested": [{"href-template": "https://a.example.com/v3/users/{user_id}"}],
    }

    assert strip_href_hosts(doc) == {
        "links": [{"rel": "self", "href": "/v1/"}],
        "namespace": "http://docs.openstack.org/ext/x/api/v1",
        "nested": [{"href-template": "/v3/users/{user_id}"}],
    }


def test_every_url_string_value_loses_its_host_but_keys_stay() -> None:
    doc = {"https://docs.openstack.org/rel/x": {"vars": ["https://docs.openstack.org/param/y", 3, None]}}

    assert strip_url_hosts(doc) == {"https://docs.openstack.org/rel/x": {"vars": ["/param/y", 3, None]}}


def test_stripping_returns_a_copy_and_leaves_the_input_alone() -> None:
    doc = {"links": [{"href": "https://a.example.com/v1/"}]}

    strip_href_hosts(doc)
    strip_url_hosts(doc)

    assert doc == {"links": [{"href": "https://a.example.com/v1/"}]}
