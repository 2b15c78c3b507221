"""Signed listVirtualMachines through the api, against a bare aiohttp handler in the same run.

    python -m bench.api_requests [--requests N] [--concurrency C]

Runs the planner and the api as processes in a vhost and a database of their own (created and
removed here), with a bootstrap admin. Requests are signed beforehand by the real ``cs`` client
(signatureVersion 3, expires in 10 minutes), so the client's signing is outside both timings.
The api checks the signature, asks the planner over the bus and serialises its answer. The
baseline is a bare aiohttp handler in a process of its own that answers every request with the
api's own answer bytes (read once beforehand), so both send the same response. Both are driven
by the same client: C concurrent aiohttp workers, N requests each target after a warm-up, in
rounds that alternate between the two.
Prints requests per second, p50 and p99 latency, and the api's ratio to the baseline. The
services log as they do in production (INFO: one line per request) into files, not into this
process, so reading their logs costs the client nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import socket
import statistics
import subprocess
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
from snapdeploy.broker_users import service_user
from snapdeploy.local.processes import ROOT
from snapdeploy.local.users import as_user

WARMUP = 100
ROUNDS = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(module: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", module], cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=out
        )


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


async def ready(port: int, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    """Until GET /readyz answers 200 (the process logs into ``log``)."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{log.name} exited {process.returncode}: {tail(log)}")
            try:
                async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{log.name} not ready within {timeout}s: {tail(log)}")
            await asyncio.sleep(0.2)


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


async def drive(urls: list[str], concurrency: int) -> tuple[float, list[float]]:
    """Seconds taken and each request's latency over ``urls`` (each must answer 200)."""
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
    return elapsed, latencies


def figures(elapsed: float, latencies: list[float]) -> tuple[float, float, float]:
    """Requests per second, p50 and p99 in ms."""
    quantiles = statistics.quantiles(latencies, n=100)
    return len(latencies) / elapsed, quantiles[49] * 1000, quantiles[98] * 1000


def bare_server(body_file: str, port: int) -> None:
    """The baseline: aiohttp answering every request with the same bytes (run as its own process)."""
    body = Path(body_file).read_bytes()

    async def handle(request: web.Request) -> web.Response:
        request.query.get("command")  # parse the query string, as any handler would
        return web.Response(body=body, content_type="application/json", charset="UTF-8")

    async def serve() -> None:
        app = web.Application()
        app.router.add_route("*", "/client/api", handle)
        app.router.add_get("/readyz", lambda _: web.Response(text="ok"))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    asyncio.run(serve())


async def main(amqp_url: str, n: int, concurrency: int) -> None:
    settings = ServiceSettings()
    database = f"snapdeploy_bench_{uuid.uuid4().hex[:8]}"
    admin_db = await asyncpg.connect(settings.database_url.rsplit("/", 1)[0] + "/postgres")
    await admin_db.execute(f'CREATE DATABASE "{database}"')
    key, secret = f"bench-{secrets.token_hex(8)}", secrets.token_urlsafe(32)
    processes: list[subprocess.Popen] = []
    try:
        with tempfile.TemporaryDirectory() as scratch:
            logs = Path(scratch)
            env = {
                "DATABASE_URL": settings.database_url.rsplit("/", 1)[0] + "/" + database,
                "LOG_LEVEL": "INFO",
                "API_ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
                "API_ADMIN_APIKEY": key,
                "API_ADMIN_SECRETKEY": secret,
                "API_ADMIN_PASSWORD": secrets.token_urlsafe(16),
            }
            ports = {"planner": free_port(), "api": free_port(), "bare": free_port()}
            for name in ("planner", "api"):
                log = logs / f"{name}.log"
                own = {"AMQP_URL": as_user(amqp_url, service_user(name)), "HTTP_PORT": str(ports[name])}
                processes.append(start(f"services.{name}", {**env, **own}, log))
                await ready(ports[name], processes[-1], log)
            endpoint = f"http://127.0.0.1:{ports['api']}/client/api"

            [probe] = signed_urls(endpoint, key, secret, 1, listall="true")
            async with aiohttp.ClientSession() as session, session.get(probe) as response:
                body = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"the api answered {response.status}: {body[:300]!r}")
            body_file = logs / "answer.json"
            await asyncio.to_thread(body_file.write_bytes, body)
            bare_env = {"BENCH_BARE_BODY": str(body_file), "BENCH_BARE_PORT": str(ports["bare"])}
            processes.append(start("bench.api_requests", bare_env, logs / "bare.log"))
            await ready(ports["bare"], processes[-1], logs / "bare.log")
            bare_endpoint = f"http://127.0.0.1:{ports['bare']}/client/api"

            # Rounds alternate between the two, so a neighbour's load falls on both alike.
            targets = {"bare aiohttp handler": bare_endpoint, "api": endpoint}
            totals = {name: (0.0, []) for name in targets}
            for url in targets.values():
                await drive(signed_urls(url, key, secret, WARMUP, listall="true"), concurrency)
            for _ in range(ROUNDS):
                for name, url in targets.items():
                    elapsed, latencies = await drive(
                        signed_urls(url, key, secret, n // ROUNDS, listall="true"), concurrency
                    )
                    totals[name] = (totals[name][0] + elapsed, totals[name][1] + latencies)
            results = {name: figures(*total) for name, total in totals.items()}

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
            process.terminate()
            process.wait(30)
        await admin_db.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin_db.close()


if __name__ == "__main__":
    if os.environ.get("BENCH_BARE_BODY"):
        bare_server(os.environ["BENCH_BARE_BODY"], int(os.environ["BENCH_BARE_PORT"]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with scratch_vhost() as amqp_url:  # before the loop: it waits for the vhost with asyncio.run
        asyncio.run(main(amqp_url, args.requests, args.concurrency))
