"""The web UI over real HTTP, on SQLite and PostgreSQL, without a browser (tests/web/test_browser.py has one).

State as in tests/web/test_api.py (``start_live``): every target polled, then r1's ``images`` changed (breaking),
a property added to r2's ``member`` and r3's ``image``, each polled again; cloud ``up`` serves r2's images.
Every page answers with its content and the security headers, no page carries an inline script or style or
an absolute link, every link of every page leads to a page that answers, errors are HTML pages with the
API's status, and ``ui.enabled: false`` turns the UI off while the API stays.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from monitor.config import Config, parse_config
from monitor.domain import TargetKey
from monitor.signals.notify.report import build_report
from monitor.store.records import HistoryFilter
from monitor.web.ui import CSP, relative_root
from tests.conftest import REGIONS, TOKEN, config_data, fresh_database, migrate
from tests.support.live_api import R1_IMAGES, Live, api_config, start_live
from tests.support.regions import Simulator

REMOVED = "/properties/images/items/properties/min_disk"
HTML = "text/html; charset=utf-8"
DEVIATING = {"sim/r1/images", "sim/r2/member", "sim/r3/image"}
MAX_CRAWL = 400
TAG_ATTRIBUTE = re.compile(r"""<[a-zA-Z][^>]*?\s(href|src|action)="([^"]*)\"""")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One polled pipeline per backend for the whole module: the UI only reads, so its tests can share it."""
    directory = tmp_path_factory.mktemp("ui")
    with Simulator(REGIONS, token=TOKEN) as simulator, fresh_database(request, request.param, directory) as url:
        instance = start_live(simulator, migrate(url))
        yield instance
        instance.close()


def page(live: Live, path: str, status: int = 200) -> str:
    """GET ``path``; asserts an HTML answer with ``status`` and the security headers, returns the body."""
    response = live.http.get(path)
    assert response.status_code == status, response.text[:2000]
    assert response.headers["content-type"] == HTML
    assert_security_headers(response)
    return response.text


def assert_security_headers(response: httpx.Response) -> None:
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def error_message(html: str) -> str:
    match = re.search(r'<p class="message">(.*?)</p>', html, re.S)
    assert match, html[:500]
    return match.group(1)


def main(html: str) -> str:
    """The page's ``<main>`` (without the footer's render time)."""
    return html[html.index("<main>") : html.index("</main>")]


def change_ids(live: Live, key: TargetKey) -> list[int]:
    changes = live.get("/api/changes", cloud=key.cloud, region=key.region, schema=key.schema)["changes"]
    return [c["id"] for c in changes]


# --- pages -----------------------------------------------------------------------------------------


def tile_lines(html: str, target: str) -> tuple[str, list[str]]:
    """The classes of ``target``'s tile on the overview and the words of its lines, in order."""
    tile = re.search(rf'<li class="tile ([^"]*)" data-target="{re.escape(target)}">(.*?)</li>', html, re.S)
    assert tile, target
    lines = re.findall(r'<span class="line ([^"]*)"><span class="sym" aria-hidden="true">[^<]*</span> ([^<]*)</span>',
                       tile.group(2))  # fmt: skip
    return tile.group(1), [f"{kind.split()[0]}: {text}" for kind, text in lines]


def test_the_overview_marks_each_target_by_status_and_counts_them(live: Live) -> None:
    html = page(live, "/ui/")
    assert tile_lines(html, "sim/r1/images")[0] == "st-breaking"
    assert 'href="./targets/sim/r1/images"' in html
    assert tile_lines(html, "sim/r1/members") == ("st-ok", ["st-ok: ok", "standing: same as reference"])
    assert "targets <b>13</b>" in html
    assert "deviating <b>3</b>" in html  # r1/images, r2/member, r3/image
    assert "breaking <b>1</b>" in html
    assert 'href="./compare/sim/images"' in html


def test_a_tile_leads_with_the_worst_unacknowledged_severity_then_its_standing(live: Live) -> None:
    """r1 moved first (breaking): the word "breaking" leads, then "ahead of the fleet"; r2 and r3 did not change,
    so they stand at the reference and say nothing of a rollout, which is counted once per group."""
    html = page(live, "/ui/")
    _, lines = tile_lines(html, "sim/r1/images")
    assert lines == ["sev-breaking: breaking", "standing: ahead of the fleet"]
    tile = re.search(r'data-target="sim/r1/images">(.*?)</li>', html, re.S)
    assert tile and '<span class="detail">1 breaking, 1 warning unacknowledged</span>' in tile.group(1)
    for unchanged in ("sim/r2/images", "sim/r3/images"):
        classes, lines = tile_lines(html, unchanged)
        assert classes == "st-ok" and lines == ["st-ok: ok", "standing: same as reference"], unchanged
        tile = re.search(rf'data-target="{unchanged}">(.*?)</li>', html, re.S)
        assert tile and "rollout" not in tile.group(1), unchanged
    _, lines = tile_lines(html, "sim/r2/member")  # an info change: the severity leads all the same
    assert lines == ["sev-info: info", "standing: ahead of the fleet"]
    assert "rollout in progress <b>3</b>" in html  # sim/images, sim/member, sim/image: groups, not regions
    rollouts = page(live, "/ui/?status=rollout")
    shown = re.findall(r'<li class="tile ([^"]*)" data-target="([^"]+)"', rollouts)
    assert {target for classes, target in shown if "dim" not in classes} == {
        f"sim/{region}/{schema}" for region in REGIONS for schema in ("images", "member", "image")
    }


def test_the_overview_filters_by_cloud_and_status(live: Live) -> None:
    only_up = page(live, "/ui/?cloud=up")
    assert re.findall(r'data-target="([^"]+)"', only_up) == ["up/r2/images"] and "targets <b>1</b>" in only_up
    deviating = page(live, "/ui/?status=deviating")
    shown = re.findall(r'<li class="tile ([^"]*)" data-target="([^"]+)"', deviating)
    assert {target for classes, target in shown if "dim" not in classes} == DEVIATING
    assert {target.split("/")[2] for _, target in shown} == {"images", "member", "image"}  # groups with a match
    assert "must be one of" in error_message(page(live, "/ui/?status=bogus", 400))
    assert "cloud must be one of: sim, up" in error_message(page(live, "/ui/?cloud=nope", 400))


def test_the_target_page_shows_state_timeline_changes_and_transitions(live: Live) -> None:
    html = page(live, "/ui/targets/sim/r1/images")
    assert "/r1/v2/schemas/images</code>" in html
    assert html.count('<li class="current">') == 1 and "Snapshots (2)" in html
    for change_id in change_ids(live, R1_IMAGES):
        assert f'href="../../../changes/{change_id}"' in html
    assert "✓ ok" in html and '<span class="tag">baseline</span>' in html
    assert 'href="../../../targets/sim/r1/images/against/sim/r2"' in html
    assert re.search(r'<dd class="standing">ahead of the fleet \(updated in the rollout in progress\)', html)
    unchanged = page(live, "/ui/targets/sim/r2/images")
    assert '<dd class="standing">same as reference ·' in unchanged and "rollout" not in main(unchanged)


def diff_row(html: str, cell_id: str) -> tuple[str, str]:
    """The classes and the inner HTML of the aligned diff row holding the element ``cell_id``."""
    match = re.search(
        rf'<div class="row ([^"]*)">((?:(?!</div>).)*id="{re.escape(cell_id)}"(?:(?!</div>).)*)</div>', html
    )
    assert match, cell_id
    return match.group(1), match.group(2)


def test_the_diff_aligns_the_rows_and_links_each_change_from_the_table(live: Live) -> None:
    """A removed property's rows face a gap, the added enum value is a row of its own and the only marked
    line of its block, and the table (worst first) links each change to its row; the pointer breaks only
    between its tokens."""
    html = page(live, "/ui/targets/sim/r1/images/diff")
    classes, row = diff_row(html, f"old-{REMOVED}")
    assert classes == "removed by-breaking" and '<span class="code n gap">' in row
    assert f'id="new-{REMOVED}"' not in html  # removed: only on the old side
    link = re.search(rf'<a href="#old-{re.escape(REMOVED)}">(.*?)</a>', html)
    tokens = REMOVED.split("/")[1:]
    assert link and link.group(1) == "<wbr>".join(f'<span class="tok">/{token}</span>' for token in tokens)
    enum = "/properties/images/items/properties/disk_format/enum"
    added = re.search(rf'<a href="#(new-{re.escape(enum)}/\d+)">', html)
    assert added, "the enum change links to the row of its value"
    classes, row = diff_row(html, added.group(1))
    assert classes == "added by-warning" and "<mark>&#34;vhdx&#34;</mark>" in row and '<span class="code o gap">' in row
    block = [m for m in re.finditer(r'<div class="row ([^"]*)">(.*?)</div>', html) if f'id="new-{enum}' in m.group(2)]
    assert [m.group(1) for m in block if "<mark>" in m.group(2)] == ["added by-warning"]  # the one value
    assert html.index(f'href="#old-{REMOVED}"') < html.index(f'href="#{added.group(1)}"')  # breaking first
    assert '<div class="diff split"' in html and '<a href="?from=' in html
    snapshots = live.get("/api/targets/sim/r1/images/snapshots")["snapshots"]
    explicit = page(live, f"/ui/targets/sim/r1/images/diff?from={snapshots[0]['id']}&to={snapshots[-1]['id']}")
    assert main(explicit) == main(html)  # the default: the last two snapshots


def test_the_diff_layout_switch_keeps_the_snapshots_and_is_in_the_url(live: Live) -> None:
    snapshots = [s["id"] for s in live.get("/api/targets/sim/r1/images/snapshots")["snapshots"]]
    html = page(live, "/ui/targets/sim/r1/images/diff?view=unified")
    assert '<div class="diff unified"' in html
    query = f"from={snapshots[0]}&amp;to={snapshots[-1]}"
    assert f'<a href="?{query}&amp;view=unified" data-view="unified" aria-current="true">unified</a>' in html
    assert f'<a href="?{query}&amp;view=split" data-view="split">side by side</a>' in html
    assert '<div class="diff unified"' in page(live, "/ui/targets/sim/r1/images/baseline?view=unified")
    assert "view must be one of" in error_message(page(live, "/ui/targets/sim/r1/images/diff?view=wide", 400))


def test_the_baseline_and_region_diffs_show_the_same_change(live: Live) -> None:
    for path in ("/ui/targets/sim/r1/images/baseline", "/ui/targets/sim/r1/images/against/sim/r2"):
        assert diff_row(page(live, path), f"old-{REMOVED}")[0] == "removed by-breaking", path
    across = page(live, "/ui/targets/sim/r1/images/against/up/r2")
    assert "up/r2/images → sim/r1/images" in across
    assert "The two documents are the same." in page(live, "/ui/targets/sim/r2/images/against/up/r2")


def test_the_compare_page_marks_the_reference_and_the_deviating_region(live: Live) -> None:
    html = page(live, "/ui/compare/sim/images")
    assert re.search(r'<tr class="deviating" data-region="r1">.*?≠ deviates', html, re.S)
    assert '<tr class="matches" data-region="r2">' in html
    assert "★ V1" in html and "<small>reference</small>" in html
    assert 'aria-label="deviation of r1"' in html and REMOVED in html
    assert f'href="../../targets/sim/r1/images/against/sim/r2#old-{REMOVED}"' in html
    assert "rollout in progress" in html and "on the new version: r1; not yet on the new version: none" in html
    across = page(live, "/ui/compare/sim/images?other_cloud=up")
    assert 'data-region="up/r2"' in across and 'data-region="sim/r1"' in across
    with_reference = page(live, "/ui/compare/sim/images?reference=r1")
    assert '<tr class="deviating" data-region="r2">' in with_reference


def test_a_change_permalink_shows_the_change_in_its_diff(live: Live) -> None:
    for change_id in change_ids(live, R1_IMAGES):
        change = live.get(f"/api/changes/{change_id}")
        html = page(live, f"/ui/changes/{change_id}")
        assert f"Change {change_id}: " in html and change["rule"] in html
        focused = re.findall(r'<div class="row [^"]* focus">(.*?)</div>', html)
        assert focused and all(f"-{change['path']}" in row or "<mark>" in row for row in focused)
        assert any(f'id="old-{change["path"]}"' in row or f'id="new-{change["path"]}' in row for row in focused)
        assert re.search(rf'<tr class="sev-row-{change["severity"]} focus">', html)


def test_the_consumers_page_is_the_matrix_with_each_cell_linking_to_its_evidence(live: Live) -> None:
    html = main(page(live, "/ui/consumers"))
    assert "1 consumer(s) across 3 region(s)" in html and "✕ 1 broken" in html
    assert re.search(r'<tr data-consumer="uploader">.*?a client setting min_disk', html, re.S)
    assert re.search(r'<td class="verdict st-broken" data-region="r1"><a href="\./consumers/uploader/r1">'
                     r'<span class="sym" aria-hidden="true">✕</span> broken</a><br><small>1 of 2 not met</small>',
                     html)  # fmt: skip
    assert '<td class="verdict st-ok" data-region="r2"><a href="./consumers/uploader/r2">' in html
    cell = main(page(live, "/ui/consumers/uploader/r1"))
    assert "uploader in r1:" in cell and "✕</span> broken" in cell
    row = cell[cell.index('data-requirement="', cell.index("not met")) - 200 :]
    assert "images: /properties/images/items/properties/min_disk exists" in cell
    assert "no min_disk in /properties/images/items/properties" in cell
    assert 'href="../../targets/sim/r1/images">sim/r1/images</a>' in cell
    sha = live.get("/api/targets/sim/r1/images/snapshots")["snapshots"][-1]["sha256"]
    assert f'href="../../../api/documents/{sha}"' in cell and "∅ nothing there" in row
    assert "image: /properties/name is writable" in cell and "&#34;type&#34;: &#34;string&#34;" in cell


def test_a_change_that_broke_a_consumer_says_so_on_its_page_and_its_target_page(live: Live) -> None:
    removed = next(c for c in live.get("/api/changes", region="r1", schema="images")["changes"] if c["breaks"])
    html = main(page(live, f"/ui/changes/{removed['id']}"))
    assert re.search(r'<a class="bad" href="\.\./consumers/uploader/r1#r-[0-9a-f]{8}">breaks uploader in r1</a>: '
                     r"images: /properties/images/items/properties/min_disk exists: no min_disk in", html)  # fmt: skip
    assert '<span class="tag bad">breaks uploader in r1</span>' in page(live, "/ui/targets/sim/r1/images")


def test_an_unknown_consumer_or_region_is_a_404_page(live: Live) -> None:
    assert (
        error_message(page(live, "/ui/consumers/nobody/r1", 404))
        == "no consumer &#39;nobody&#39; (consumers: uploader)"
    )
    assert "no consumer is judged in region &#39;r9&#39;" in error_message(page(live, "/ui/consumers/uploader/r9", 404))


def test_static_files_are_served_with_their_types_and_headers(live: Live) -> None:
    for name, kind in (("ui.css", "text/css"), ("ui.js", "javascript"), ("favicon.svg", "image/svg+xml")):
        response = live.http.get(f"/ui/static/{name}")
        assert response.status_code == 200 and kind in response.headers["content-type"], name
        assert_security_headers(response)


# --- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/ui/targets/sim/r9/images", 404, "no configured target sim/r9/images"),
        ("/ui/changes/999999", 404, "no change 999999"),
        ("/ui/changes/abc", 400, "change_id"),
        ("/ui/nope", 404, "no such page: /ui/nope"),
        ("/ui/static/nope.css", 404, "no such page"),
        ("/ui/targets/sim/r2/images/diff", 409, "a diff needs two"),
        ("/ui/targets/sim/r1/images/diff?from=abc", 400, "from"),
        ("/ui/compare/nope/images", 404, "no configured targets for cloud"),
        ("/ui/compare/sim/images?reference=r9", 404, "is not a compared region"),
        ("/ui/targets/sim/r1/images/against/sim/r9", 404, "no configured target sim/r9/images"),
    ],
)
def test_errors_are_html_pages_with_the_status(live: Live, path: str, status: int, message: str) -> None:
    html = page(live, path, status)
    assert message in error_message(html)
    assert 'href="' in html and "Back to the overview" in html


def test_labels_from_the_url_are_escaped_in_error_pages(live: Live) -> None:
    html = page(live, "/ui/targets/%3Cb%3Ex%3C%2Fb%3E/r1/images", 404)
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in error_message(html)


def test_the_api_keeps_its_json_errors(live: Live) -> None:
    response = live.http.get("/api/targets/sim/r9/images/snapshots")
    assert response.status_code == 404 and response.headers["content-type"] == "application/json"
    assert "content-security-policy" not in response.headers


def test_a_foreign_snapshot_is_a_404(live: Live) -> None:
    other = live.get("/api/targets/sim/r2/images/snapshots")["snapshots"][0]["id"]
    assert "does not belong" in error_message(page(live, f"/ui/targets/sim/r1/images/diff?from={other}", 404))


# --- the whole UI --------------------------------------------------------------------------------------


def crawl(live: Live) -> dict[str, httpx.Response]:
    """Every UI page reachable from ``/`` by its links (fragments dropped), with its response."""
    seen: dict[str, httpx.Response] = {}
    queue = [f"{live.base_url}/"]
    while queue and len(seen) < MAX_CRAWL:
        url = queue.pop()
        if url in seen:
            continue
        response = live.http.get(url, follow_redirects=True)
        seen[url] = response
        if response.headers.get("content-type") != HTML:
            continue
        for _, value in TAG_ATTRIBUTE.findall(response.text):
            target = urljoin(str(response.url), value.replace("&amp;", "&")).split("#", 1)[0]
            if target.startswith(f"{live.base_url}/ui/") and "/api/" not in target:
                queue.append(target)
    assert len(seen) < MAX_CRAWL, "the crawl did not end"
    return seen


@pytest.mark.slow
def test_every_link_leads_to_a_page_with_the_headers_and_no_inline_code(live: Live) -> None:
    pages = crawl(live)
    kinds = {urlsplit(url).path.split("/")[2] or "overview" for url in pages if "/ui/" in url}
    assert {"overview", "targets", "compare", "changes", "static"} <= kinds
    assert any(url.endswith("/baseline") for url in pages) and any("/against/" in url for url in pages)
    for url, response in pages.items():
        assert response.status_code == 200, url
        assert_security_headers(response)
        if response.headers["content-type"] != HTML:
            continue
        html = response.text
        assert not re.search(r"<script(?![^>]*\ssrc=)", html), f"{url}: inline script"
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=", html), f"{url}: inline style or handler"
        for attribute, value in TAG_ATTRIBUTE.findall(html):
            assert not re.match(r"[a-z]+:|//|/", value), f"{url}: {attribute}={value!r} is not relative"


def test_every_link_of_the_api_side_answers(live: Live) -> None:
    """Pages link the read API's documents and OpenAPI document (``../api/...``): those answer too."""
    html = page(live, "/ui/targets/sim/r1/images")
    links = {urljoin(f"{live.base_url}/ui/targets/sim/r1/images", v) for _, v in TAG_ATTRIBUTE.findall(html)}
    api = [link for link in links if "/api/" in link]
    assert any("/api/documents/" in link for link in api) and any("openapi.json" in link for link in api)
    for link in api:
        assert live.http.get(link).status_code == 200, link


def test_the_root_redirects_to_the_ui(live: Live) -> None:
    response = live.http.get("/")
    assert response.status_code == 307 and response.headers["location"] == "ui/"
    assert_security_headers(response)


@pytest.mark.parametrize(
    ("path", "root"),
    [("/ui/", "./"), ("/ui/changes/4", "../"), ("/ui/targets/a/b/c", "../../../"),
     ("/ui/targets/a/b/c/against/d/e", "../../../../../../"), ("/ui/targets/a%2Fb/c/d", "../../../")],
)  # fmt: skip
def test_relative_root_counts_the_levels_of_the_raw_path(path: str, root: str) -> None:
    scope: dict[str, Any] = {"path": path.replace("%2F", "/"), "raw_path": path.encode()}
    assert relative_root(scope) == root


# --- switches and links ----------------------------------------------------------------------------------


def test_the_ui_is_off_when_disabled_while_the_api_answers(simulator: Simulator, migrated_db_url: str) -> None:
    data = config_data(simulator, migrated_db_url, confirm_reads=1)
    data["ui"] = {"enabled": False}
    live = Live(parse_config(data, "test"))
    try:
        for path in ("/ui/", "/ui/static/ui.css", "/ui/targets/sim/r1/images"):
            response = live.http.get(path)
            assert response.status_code == 404 and response.headers["content-type"].startswith("text/plain"), path
        assert live.get("/api/targets")["targets"]
        landing = live.http.get("/")  # exporters' landing page instead of the UI's redirect
        assert landing.status_code == 200 and '<a href="/api/openapi.json">' in landing.text
        assert "/ui/" not in landing.text
    finally:
        live.close()


def ui_config(sim: Simulator, **ui: Any) -> Config:
    data = config_data(sim, "sqlite://")
    data["ui"] = ui
    return parse_config(data, "test")


def test_the_default_notification_link_is_the_change_permalink(simulator: Simulator) -> None:
    settings = ui_config(simulator, base_url="https://drift.example.org/").notification_settings()
    assert settings.link_template == "https://drift.example.org/ui/changes/{change_id}"
    assert ui_config(simulator).notification_settings().link_template is None  # no base_url: no link
    disabled = ui_config(simulator, enabled=False, base_url="https://x.example")
    assert disabled.notification_settings().link_template is None
    data = config_data(simulator, "sqlite://")
    data["ui"] = {"base_url": "https://x.example"}
    data["notifications"] = {"link_template": "https://grafana.example/d/x?var-region={region}"}
    assert parse_config(data, "test").notification_settings().link_template == data["notifications"]["link_template"]


def test_a_notification_link_opens_the_worst_change_of_its_target(simulator: Simulator, migrated_db_url: str) -> None:
    config = api_config(simulator, migrated_db_url)
    live = start_live(simulator, migrated_db_url)
    try:
        template = config.model_copy(update={"ui": config.ui.model_copy(update={"base_url": live.base_url})})
        records = live.parts.database.repository.history(HistoryFilter(cloud="sim", region="r1", schema="images"))
        report = build_report(records, datetime.now(UTC), template.notification_settings().link_template)
        (target,) = report["targets"]
        (worst,) = [r for r in records if r.severity.value == "breaking"]
        assert target["link"] == f"{live.base_url}/ui/changes/{worst.id}"
        html = page(live, target["link"].removeprefix(live.base_url))
        assert f"Change {worst.id}: " in html and "breaking" in html and "sim/r1/images" in html
    finally:
        live.close()
