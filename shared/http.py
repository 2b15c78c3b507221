"""/healthz (alive), /readyz (broker and database reachable), /metrics (Prometheus) over aiohttp."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared.metrics import Metrics

Check = Callable[[], Awaitable[bool]]


def health_app(
    checks: dict[str, Check], metrics: Metrics, app: web.Application | None = None
) -> web.Application:
    app = app or web.Application()

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        results = {}
        for name, check in checks.items():
            try:
                results[name] = await asyncio.wait_for(check(), 2.0)
            except Exception:
                results[name] = False
        ready = all(results.values())
        return web.json_response({"ready": ready, "checks": results}, status=200 if ready else 503)

    async def metrics_view(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    return app


class _Protocols:
    """The protocol factory a site serves with: aiohttp's server, each connection handled by
    ``protocol`` (a ``RequestHandler`` of the service's own, e.g. with its own error answers)."""

    def __init__(self, server: web.Server, protocol: type[RequestHandler]):
        self._server, self._protocol = server, protocol

    def __call__(self) -> RequestHandler:
        return self._protocol(self._server, loop=self._server._loop, **self._server._kwargs)

    def __getattr__(self, name: str):
        return getattr(self._server, name)


class _Runner(web.AppRunner):
    def __init__(self, app: web.Application, protocol: type[RequestHandler], **kwargs):
        super().__init__(app, **kwargs)
        self._protocol = protocol

    async def _make_server(self):
        return _Protocols(await super()._make_server(), self._protocol)


async def serve(
    app: web.Application, host: str, port: int, *, protocol: type[RequestHandler] | None = None
) -> tuple[web.AppRunner, int]:
    """Start serving; returns the runner and the bound port (useful with port 0). ``protocol``
    handles each connection in place of aiohttp's own ``RequestHandler``."""
    runner = _Runner(app, protocol, access_log=None) if protocol else web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]
    return runner, bound
