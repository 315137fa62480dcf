"""The full stack in a test: the API in-process on the full-stack settings, and helpers."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from taskhub.config import Settings
from taskhub.messaging.streams import StreamKeys, all_partitions
from taskhub.models import OutboxEvent, ProcessedEvent
from tests.factories import Actor
from tests.fullstack.conftest import WorkerProcess, pending_orders
from tests.polling import eventually

_sku = itertools.count(1)


@dataclass
class Stack:
    """The API in-process on the full-stack settings, with an admin and a customer."""

    settings: Settings
    app: FastAPI
    client: httpx.AsyncClient
    admin: Actor
    customer: Actor
    engine: AsyncEngine

    @property
    def keys(self) -> StreamKeys:
        return StreamKeys(self.settings.redis_prefix)

    @property
    def partitions(self) -> list[StreamKeys]:
        return all_partitions(self.settings.redis_prefix, self.settings.stream_partitions)

    async def product(self, stock: int) -> int:
        r = await self.client.post(
            "/api/v2/products",
            json={"sku": f"FS-{next(_sku)}", "name": "Widget", "price_cents": 100, "stock": stock},
            headers=self.admin.headers,
        )
        assert r.status_code == 201, r.text
        product_id: int = r.json()["id"]
        return product_id

    async def order(self, lines: list[tuple[int, int]], actor: Actor | None = None) -> int:
        r = await self.client.post(
            "/api/v2/orders",
            json={"items": [{"product_id": p, "quantity": q} for p, q in lines]},
            headers=(actor or self.customer).headers,
        )
        assert r.status_code == 201, r.text
        order_id: int = r.json()["id"]
        return order_id

    async def orders(self, lines: list[list[tuple[int, int]]], *, parallel: int = 30) -> list[int]:
        gate = asyncio.Semaphore(parallel)

        async def one(order_lines: list[tuple[int, int]]) -> int:
            async with gate:
                return await self.order(order_lines)

        return list(await asyncio.gather(*(one(x) for x in lines)))

    async def drained(self) -> bool:
        """No order PENDING, nothing left in the outbox, nothing unacknowledged."""
        if await pending_orders(self.engine):
            return False
        async with self.engine.connect() as conn:
            backlog = await conn.scalar(
                select(func.count()).where(OutboxEvent.published_at.is_(None))
            )
        if backlog:
            return False
        redis = self.app.state.redis
        for keys in self.partitions:
            try:
                info = await redis.xpending(keys.stream, keys.group)
                lag = [g.get("lag") for g in await redis.xinfo_groups(keys.stream)]
            except Exception:  # Redis down, or the stream not created yet
                return False
            if int(info["pending"]) or any(lag):
                return False
        return True

    async def wait_consumers(self, count: int) -> None:
        """Wait until `count` worker processes joined the consumer group."""
        redis = self.app.state.redis

        async def joined() -> bool:
            for keys in self.partitions:
                try:
                    consumers = await redis.xinfo_consumers(keys.stream, keys.group)
                except Exception:  # the stream or group does not exist yet
                    return False
                if len(consumers) < count:
                    return False
            return True

        await eventually(joined, timeout=20, what=f"{count} consumers to join")

    async def wait_drained(self, timeout: float, workers: list[WorkerProcess]) -> None:
        try:
            await eventually(self.drained, timeout=timeout, what="the pipeline to drain")
        except BaseException:
            for worker in workers:
                print(f"--- {worker.log.name}\n{worker.tail()}")  # noqa: T201
            raise


async def processed(engine: AsyncEngine, handler: str) -> int:
    async with engine.connect() as conn:
        count = await conn.scalar(select(func.count()).where(ProcessedEvent.handler == handler))
        return int(count or 0)


async def stock_of(engine: AsyncEngine, product_id: int) -> int:
    async with engine.connect() as conn:
        return int(
            await conn.scalar(text("SELECT stock FROM products WHERE id = :id"), {"id": product_id})
        )
