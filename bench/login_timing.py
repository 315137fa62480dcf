#!/usr/bin/env python3
"""Login latency for a known email with a wrong password against an unknown email.

The two must cost the same (bcrypt against the account's hash, or against a dummy hash of
the same cost), so that response times do not reveal which emails have accounts. The suite
checks this by counting bcrypt checks (tests/auth/test_auth.py); this measures the times.

  python bench/login_timing.py [--rounds 12] [--n 20]

Embedded shape, in process, on a throwaway SQLite file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--n", type=int, default=20)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(
            {
                "ENVIRONMENT": "test",
                "SECRET_KEY": "login-timing-" + "x" * 40,
                "DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/timing.db",
                "BCRYPT_ROUNDS": str(a.rounds),
                "LOGIN_MAX_FAILURES_PER_ACCOUNT": "1000000",
                "LOGIN_MAX_FAILURES_PER_CLIENT": "1000000",
            }
        )
        import httpx
        from asgi_lifespan import LifespanManager

        from taskhub.config import get_settings
        from taskhub.main import create_app
        from taskhub.migrate import upgrade

        await upgrade(get_settings())
        app = create_app(get_settings())
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                await client.post(
                    "/api/v1/auth/signup",
                    json={"email": "known@example.com", "password": "Known-pass-123"},
                )
                times: dict[str, list[float]] = {"known": [], "unknown": []}
                for _ in range(a.n):
                    for kind, email in (("known", "known@"), ("unknown", "nobody@")):
                        started = time.perf_counter()
                        await client.post(
                            "/api/v1/auth/login/access-token",
                            data={"username": email + "example.com", "password": "Wrong-1234"},
                        )
                        times[kind].append(time.perf_counter() - started)
    for kind, values in times.items():
        print(  # noqa: T201
            f"{kind:8} median {statistics.median(values) * 1000:7.1f} ms  "
            f"min {min(values) * 1000:7.1f} ms  max {max(values) * 1000:7.1f} ms"
        )


if __name__ == "__main__":
    asyncio.run(main())
