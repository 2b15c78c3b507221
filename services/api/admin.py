"""One-line root admin: ``python -m services.api.admin --username admin [--password PW]``.

Creates or updates the root admin in account ``admin`` (domain ROOT) in the api's schema, with
new API keys unless ``--apikey`` and ``--secretkey`` are given, and prints the keys once (they
are stored encrypted; the secret cannot be read back). Reads ``DATABASE_URL`` and
``API_ENCRYPTION_KEY`` like the service.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import structlog

from services.api import accounts
from services.api.main import ApiSettings, keyring_of
from shared.db import create_pool
from shared.db.migrations import migrate


async def run(args: argparse.Namespace) -> int:
    settings = ApiSettings()
    keyring = keyring_of(settings)
    api_key, secret = (args.apikey, args.secretkey) if args.apikey and args.secretkey else accounts.new_keys()
    password = args.password or os.environ.get("API_ADMIN_PASSWORD")
    pool = await create_pool(settings.database_url, "api", min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await migrate(conn, "api", accounts.MIGRATIONS)
            await accounts.ensure_admin(
                conn, keyring, username=args.username, password=password, api_key=api_key, secret=secret
            )
    finally:
        await pool.close()
    sys.stdout.write(f"CLOUDSTACK_KEY={api_key}\nCLOUDSTACK_SECRET={secret}\n")
    return 0


def main() -> None:
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))  # stdout: the keys only
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--username", default="admin")
    parser.add_argument("--password", help="also settable as API_ADMIN_PASSWORD (kept out of shell history)")
    parser.add_argument("--apikey")
    parser.add_argument("--secretkey")
    raise SystemExit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
