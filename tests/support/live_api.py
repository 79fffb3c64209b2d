"""The read API served live, as the daemon serves it, for the tests of the API, the UI and the read model.

:class:`Live` is the real pipeline (``app.build``) with its event loop running in a thread and the status server
with the API (and the UI, as ``ui.enabled`` says) on a free loopback port; :func:`start_live` builds one on
:func:`api_config` (the simulator's three regions as cloud ``sim`` plus cloud ``up``, the :data:`UPLOADER`
consumer, :data:`API_TOKEN`), polls everything, then changes r1's ``images`` (breaking: it drops
:data:`MIN_DISK`), r2's ``member`` and r3's ``image`` and polls those again. :func:`error` asserts the API's JSON
error answer and returns its message.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx

from monitor.app import Components, build, build_api
from monitor.config import Config, parse_config
from monitor.domain import TargetKey
from monitor.web.app import create_app
from monitor.web.server import WebServer
from tests.conftest import config_data
from tests.support.regions import Simulator, mutate_breaking

T = TypeVar("T")
API_TOKEN = "api-token-for-tests-7c1d0e"
R1_IMAGES = TargetKey("sim", "r1", "images")
MIN_DISK = "/properties/images/items/properties/min_disk"
UPLOADER = {
    "name": "uploader", "description": "a client setting min_disk on the images it uploads", "clouds": ["sim"],
    "requires": [{"schema": "images", "pointer": MIN_DISK}, {"schema": "image", "pointer": "/properties/name",
                                                             "writable": True}],
}  # fmt: skip


def api_config(sim: Simulator, db_url: str, token: str | None = API_TOKEN) -> Config:
    """The simulator's three regions as cloud ``sim``, plus cloud ``up`` (region r2, images only)."""
    data = config_data(sim, db_url, confirm_reads=1)
    upstream = {**data["clouds"][0], "name": "up", "regions": ["r2"], "schemas": ["images"]}
    data["clouds"].append(upstream)
    if token is not None:
        data["api"] = {"token": token}
    data["consumers"] = [UPLOADER]  # r1's breaking change removes min_disk: it breaks the uploader there
    return parse_config(data, "test")


def add_property(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``document`` with one more top-level property (an info change)."""
    return {**document, "properties": {**document["properties"], "zz_added": {"type": "string"}}}


class Live:
    """The pipeline with its event loop in a thread, and the status server with the API (and the UI, as
    ``ui.enabled`` says) on a free port."""

    def __init__(self, config: Config) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-loop", daemon=True)
        self._thread.start()
        try:
            self.parts: Components = build(config)
        except BaseException:
            self.loop.call_soon_threadsafe(self.loop.stop)
            raise
        api = build_api(self.parts, self.loop)
        app = create_app(self.parts.metrics, lambda: {"scheduler": True}, api, ui=config.ui.enabled)  # as the daemon
        self.server = WebServer(app, "127.0.0.1", 0)
        self.server.start()
        self.base_url = f"http://127.0.0.1:{self.server.port}"
        self.http = httpx.Client(base_url=self.base_url, timeout=10)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    def poll(self, *keys: TargetKey) -> None:
        """Poll the given targets (default: all) concurrently on the loop."""
        specs = [s for s in self.parts.specs if not keys or s.key in keys]

        async def poll_all() -> None:
            await asyncio.gather(*(self.parts.service.poll(spec) for spec in specs))

        self.run(poll_all())

    def get(self, path: str, **params: Any) -> Any:
        """GET ``path``; asserts a 200 JSON answer and returns the parsed body."""
        response = self.http.get(path, params=params or None)  # an empty dict would drop the query of ``path``
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        return response.json()

    def close(self) -> None:
        self.http.close()
        self.server.stop()
        self.run(self.parts.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def start_live(sim: Simulator, db_url: str, token: str | None = API_TOKEN) -> Live:
    """Build, poll everything, change three documents, poll those again."""
    live = Live(api_config(sim, db_url, token))
    try:
        live.poll()
        sim.set_document("r1", "images", mutate_breaking(sim.document("r1", "images")))
        sim.set_document("r2", "member", add_property(sim.document("r2", "member")))
        sim.set_document("r3", "image", add_property(sim.document("r3", "image")))
        live.poll(R1_IMAGES, TargetKey("sim", "r2", "member"), TargetKey("sim", "r3", "image"))
    except BaseException:
        live.close()
        raise
    return live


def error(response: httpx.Response, status: int) -> str:
    """Asserts a JSON error answer with ``status``; returns its message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and body["error"]
    return str(body["error"])
