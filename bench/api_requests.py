"""Signed listVirtualMachines through the api, against a bare aiohttp handler in the same run.

    python -m bench.api_requests [--requests N] [--concurrency C]

Runs the planner and the api as processes in a vhost and a database of their own (created and
removed here), with a bootstrap admin. Requests are signed beforehand by the real ``cs`` client
(signatureVersion 3, expires in 10 minutes), so the client's signing is outside both timings.
The api checks the signature, asks the planner over the bus and serialises its answer. The
baseline is a bare aiohttp handler in a process of its own that answers every request with the
api's own answer bytes (read once beforehand), so both send the same response. Both are driven
by the same client: C concurrent aiohttp workers, N requests each target after a warm-up.
Prints requests per second, p50 and p99 latency, and the api's ratio to the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp import web
from cs import CloudStack
from cs.client import transform

from bench.support import scratch_vhost
from shared.settings import ServiceSettings
from tests.support.processes import ServiceProcess

WARMUP = 100


def signed_urls(endpoint: str, key: str, secret: str, n: int, **params: str) -> list[str]:
    """``n`` GET URLs of listVirtualMachines, each signed as the cs client signs it."""
    client = CloudStack(endpoint=endpoint, key=key, secret=secret)
    urls = []
    for _ in range(n):
        _, query = client._prepare_request("listVirtualMachines", **params)
        transform(query)
        client._sign(query)
        urls.append(endpoint + "?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote))
    return urls


async def drive(urls: list[str], concurrency: int) -> tuple[float, float, float]:
    """Requests per second, p50 and p99 in ms over ``urls`` (each must answer 200)."""
    latencies: list[float] = []
    todo = iter(urls)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for url in todo:
                started = time.perf_counter()
                async with session.get(url) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{response.status}: {await response.text()}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    quantiles = statistics.quantiles(latencies, n=100)
    return len(urls) / elapsed, quantiles[49] * 1000, quantiles[98] * 1000


def bare_server(body_file: str) -> None:
    """The baseline: aiohttp answering every request with the same bytes (run as its own process)."""
    body = Path(body_file).read_bytes()

    async def handle(request: web.Request) -> web.Response:
        request.query.get("command")  # parse the query string, as any handler would
        return web.Response(body=body, content_type="application/json", charset="UTF-8")

    async def serve() -> None:
        app = web.Application()
        app.router.add_route("*", "/client/api", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        print(json.dumps({"event": "service started", "http_port": port}), flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


async def main(n: int, concurrency: int) -> None:
    settings = ServiceSettings()
    database = f"snapdeploy_bench_{uuid.uuid4().hex[:8]}"
    admin_db = await asyncpg.connect(settings.database_url.rsplit("/", 1)[0] + "/postgres")
    await admin_db.execute(f'CREATE DATABASE "{database}"')
    key, secret = f"bench-{secrets.token_hex(8)}", secrets.token_urlsafe(32)
    processes: list[ServiceProcess] = []
    try:
        with scratch_vhost() as amqp_url, tempfile.TemporaryDirectory() as scratch:
            env = {
                "AMQP_URL": amqp_url,
                "DATABASE_URL": settings.database_url.rsplit("/", 1)[0] + "/" + database,
                "HTTP_PORT": "0",
                "LOG_LEVEL": "WARNING",
                "API_ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
                "API_ADMIN_APIKEY": key,
                "API_ADMIN_SECRETKEY": secret,
                "API_ADMIN_PASSWORD": secrets.token_urlsafe(16),
            }
            planner = ServiceProcess("services.planner", env, name="planner").start()
            api = ServiceProcess("services.api", env, name="api").start()
            processes += [planner, api]
            planner.wait_started(60)
            endpoint = f"http://127.0.0.1:{api.wait_started(60)}/client/api"

            [probe] = signed_urls(endpoint, key, secret, 1, listall="true")
            async with aiohttp.ClientSession() as session, session.get(probe) as response:
                body = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"the api answered {response.status}: {body[:300]!r}")
            body_file = os.path.join(scratch, "answer.json")
            await asyncio.to_thread(Path(body_file).write_bytes, body)
            bare = ServiceProcess("bench.api_requests", {"BENCH_BARE_BODY": body_file}, name="bare")
            processes.append(bare.start())
            bare_endpoint = f"http://127.0.0.1:{bare.wait_started(30)}/client/api"

            results = {}
            for name, url in (("bare aiohttp handler", bare_endpoint), ("api", endpoint)):
                urls = signed_urls(url, key, secret, WARMUP + n, listall="true")
                await drive(urls[:WARMUP], concurrency)
                results[name] = await drive(urls[WARMUP:], concurrency)

        base_rate, base_p50, base_p99 = results["bare aiohttp handler"]
        print(
            f"signed listVirtualMachines (admin, listall): {n} requests per target, {concurrency} concurrent"
        )
        print(f"answer: {len(body)} bytes; the api checks the signature and asks the planner over the bus")
        print(f"{'target':22} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'req/s ratio':>12} {'p99 ratio':>10}")
        for name, (rate, p50, p99) in results.items():
            print(
                f"{name:22} {rate:9.0f} {p50:8.2f} {p99:8.2f} {rate / base_rate:12.2f} {p99 / base_p99:10.2f}"
            )
        print(f"baseline: bare aiohttp handler, same client, same answer bytes (p50 {base_p50:.2f} ms)")
    finally:
        for process in processes:
            process.stop()
        await admin_db.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin_db.close()


if __name__ == "__main__":
    if os.environ.get("BENCH_BARE_BODY"):
        bare_server(os.environ["BENCH_BARE_BODY"])
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.concurrency))
