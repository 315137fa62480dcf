"""Superuser creation and demo data for the CLI.

`seed_demo` creates the demo accounts (real bcrypt hashes, printed so that they log in) and
demo projects, then loads tasks, products and orders in batches: COPY on PostgreSQL,
executemany on SQLite, one transaction per batch, with a progress bar. A million rows load
in minutes.

The layout is fixed, so that benchmarks and tests know where to look:

- bob@example.com is a member (alice the owner, carol a viewer) of the team's projects,
  "Demo project" and up to 49 more, which hold the first `TEAM_TASKS` tasks;
- the other tasks are in projects of `PROJECT_TASKS` tasks each, each with five generated
  members (demo-user-N@example.com, password `GENERATED_PASSWORD`), who bob cannot see;
- every title starts with the word "Task"; `RARE_WORD` is in one task and one product in
  `RARE_EVERY`; assignees are members of the task's project; a quarter of the tasks have no
  due date, a quarter no assignee;
- products DEMO-000001…, one in ten out of stock, their stock recorded by the inventory;
- orders of one to three lines, most of them paid, by the generated users (one in
  `RARE_EVERY` by bob). They are history: the stock they sold is not taken from the products.

Named rows (accounts, the team's projects, products by SKU) are created once; tasks, other
projects and orders are added on every run.
"""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.progress import Progress
from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from taskhub.auth import service as users
from taskhub.auth.schemas import SignupIn
from taskhub.auth.tokens import end_all_tokens
from taskhub.catalog import inventory
from taskhub.config import Settings
from taskhub.db import make_engine, make_sessionmaker, table_of
from taskhub.driver import DriverConnection
from taskhub.models import (
    Order,
    OrderItem,
    OrderStatus,
    Product,
    Project,
    ProjectMember,
    Role,
    Task,
    User,
)
from taskhub.models.task import TaskPriority, TaskStatus
from taskhub.security import hash_password

DEMO_USERS = [
    ("admin@example.com", "Admin-pass-123", "site admin", True),
    ("alice@example.com", "Alice-pass-123", "project owner", False),
    ("bob@example.com", "Bob-pass-1234", "project member", False),
    ("carol@example.com", "Carol-pass-123", "project viewer", False),
]
GENERATED_PASSWORD = "Demo-pass-123"  # noqa: S105 (printed demo credentials)
TEAM_PROJECTS = 50
TEAM_TASKS = 5_000
PROJECT_TASKS = 1_000
PROJECT_MEMBERS = 5
RARE_WORD = "needle"
RARE_EVERY = 1_000
COMMON_WORD = "task"
BATCH = 20_000
_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
_STATUSES = [status.value for status in TaskStatus]
_PRIORITIES = [priority.value for priority in TaskPriority]
# Most orders are paid; some were cancelled by their owner, a few failed.
_ORDER_STATES = [
    *[(OrderStatus.PAID, None)] * 16,
    *[(OrderStatus.CANCELLED, "user")] * 3,
    (OrderStatus.FAILED, "insufficient stock"),
]
_ITEM_COLUMNS = ["order_id", "product_id", "quantity", "unit_price_cents"]


def _vocabulary() -> list[str]:
    rng = random.Random("vocabulary")  # noqa: S311 (demo data)
    syllables = "ka lo mi ra te no vu si de po lan ber tor min gal fer zu qui xo hal".split()
    words: set[str] = set()
    while len(words) < 800:
        word = "".join(rng.choice(syllables) for _ in range(rng.randint(2, 3)))
        if not word.startswith((RARE_WORD[:4], COMMON_WORD[:3])):
            words.add(word)
    return sorted(words)


_VOCABULARY = _vocabulary()


def _words(rng: random.Random, count: int) -> list[str]:
    """`count` words, a few of them common and most rare (as in real text)."""
    return [_VOCABULARY[int(len(_VOCABULARY) * rng.random() ** 3)] for _ in range(count)]


def _sku(n: int) -> str:
    return f"DEMO-{n + 1:06d}"


def _price(n: int) -> int:
    return 500 + (n * 37) % 10_000


async def create_or_promote_superuser(
    settings: Settings, *, email: str, password: str, full_name: str | None
) -> bool:
    """Create a site admin; an existing account is promoted and given this password."""
    try:
        valid = SignupIn(email=email, password=password, full_name=full_name)
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    engine = make_engine(settings, pool=False)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            existing = await users.get_user_by_email(session, email=valid.email)
            if existing is None:
                await users.create_user(
                    session,
                    email=valid.email,
                    password=valid.password,
                    full_name=valid.full_name,
                    is_superuser=True,
                    rounds=settings.bcrypt_rounds,
                )
                return True
            existing.is_superuser = True
            existing.is_active = True
            existing.hashed_password = await hash_password(
                valid.password, rounds=settings.bcrypt_rounds
            )
            await session.flush()
            # A new password ends the account's tokens, as it does through the API.
            await end_all_tokens(session, user_id=existing.id)
            return False
    finally:
        await engine.dispose()


async def seed_demo(
    settings: Settings, *, tasks: int, products: int, console: Console, orders: int = 0
) -> list[tuple[str, str, str]]:
    """Create the demo accounts and projects, then load tasks, products and orders (see the
    module docstring); the credentials that log in."""
    engine = make_engine(settings, pool=False)
    try:
        loader = _Loader(engine, settings, console)
        credentials = await loader.accounts()
        others = max(0, tasks - TEAM_TASKS)
        other_projects = math.ceil(others / PROJECT_TASKS)
        generated = max(10, other_projects, orders // RARE_EVERY) if tasks > 30 or orders else 0
        team = await loader.team_projects(min(TEAM_PROJECTS, max(1, tasks // 100)))
        people = await loader.generated_users(generated)
        projects = await loader.other_projects(other_projects, people)
        with Progress(console=console, transient=True) as progress:
            await loader.tasks(progress, team, min(tasks, TEAM_TASKS), projects, others)
            catalog = await loader.products(progress, products)
            await loader.orders(progress, orders, people, catalog)
        await loader.finish()
    finally:
        await engine.dispose()
    if generated:
        credentials.append(
            (f"demo-user-1…{generated}@example.com", GENERATED_PASSWORD, "generated users")
        )
    return credentials


@dataclass(frozen=True, slots=True)
class _Batch:
    """One batch's transaction: an executor for the services, and the connection itself."""

    executor: DriverConnection
    driver: Any  # asyncpg's connection on PostgreSQL, for COPY; None on SQLite
    conn: AsyncConnection

    async def copy(self, table: Table, columns: list[str], rows: Sequence[Any]) -> None:
        """Insert rows: COPY on PostgreSQL, executemany on SQLite."""
        if not rows:
            return
        if self.driver is not None:
            await self.driver.copy_records_to_table(table.name, records=rows, columns=columns)
        else:
            records = [dict(zip(columns, r, strict=True)) for r in rows]
            await self.conn.execute(insert(table), records)


class _Loader:
    """The steps of `seed_demo` on one engine."""

    def __init__(self, engine: AsyncEngine, settings: Settings, console: Console) -> None:
        self.engine = engine
        self.settings = settings
        self.console = console
        self.people: dict[str, int] = {}

    async def accounts(self) -> list[tuple[str, str, str]]:
        """The demo accounts, created or reset to their printed passwords."""
        credentials = []
        async with make_sessionmaker(self.engine)() as session, session.begin():
            for email, password, role, admin in DEMO_USERS:
                user = await users.get_user_by_email(session, email=email)
                if user is None:
                    user = await users.create_user(
                        session,
                        email=email,
                        password=password,
                        full_name=email.split("@")[0].title(),
                        is_superuser=admin,
                        rounds=self.settings.bcrypt_rounds,
                    )
                else:
                    user.hashed_password = await hash_password(
                        password, rounds=self.settings.bcrypt_rounds
                    )
                    user.is_active = True
                self.people[email] = user.id
                credentials.append((email, password, role))
        return credentials

    async def team_projects(self, count: int) -> list[tuple[int, list[int]]]:
        """The team's projects (alice owner, bob member, carol viewer): (id, members)."""
        titles = ["Demo project", *(f"Demo project {n}" for n in range(2, count + 1))]
        roles = {
            "alice@example.com": Role.OWNER,
            "bob@example.com": Role.MEMBER,
            "carol@example.com": Role.VIEWER,
        }
        members = [self.people[email] for email in roles]
        projects = []
        async with make_sessionmaker(self.engine)() as session, session.begin():
            for title in titles:
                project = await session.scalar(select(Project).where(Project.title == title))
                if project is None:
                    project = Project(title=title, description="Seeded by taskhub seed-demo")
                    session.add(project)
                    await session.flush()
                    session.add_all(
                        ProjectMember(project_id=project.id, user_id=self.people[e], role=r)
                        for e, r in roles.items()
                    )
                projects.append((project.id, members))
        return projects

    async def generated_users(self, count: int) -> list[int]:
        """demo-user-1 … demo-user-`count`, created once, all with one password."""
        if not count:
            return []
        emails = [f"demo-user-{n}@example.com" for n in range(1, count + 1)]
        _users = table_of(User)
        async with self.engine.begin() as conn:
            found = dict(
                (
                    await conn.execute(
                        select(_users.c.email, _users.c.id).where(_users.c.email.in_(emails))
                    )
                ).all()
            )
            missing = [email for email in emails if email not in found]
            if missing:
                hashed = await hash_password(GENERATED_PASSWORD, rounds=self.settings.bcrypt_rounds)
                await conn.execute(
                    insert(_users),
                    [
                        {"email": e, "hashed_password": hashed, "full_name": e.split("@")[0]}
                        for e in missing
                    ],
                )
                found.update(
                    (
                        await conn.execute(
                            select(_users.c.email, _users.c.id).where(_users.c.email.in_(missing))
                        )
                    ).all()
                )
        return [int(found[email]) for email in emails]

    async def other_projects(self, count: int, people: list[int]) -> list[tuple[int, list[int]]]:
        """Projects the team cannot see, each with `PROJECT_MEMBERS` generated members."""
        if not count:
            return []
        _projects, _members = table_of(Project), table_of(ProjectMember)
        async with self.engine.begin() as conn:
            first = await self._next_id(conn, _projects)
            ids = list(range(first, first + count))
            await conn.execute(
                insert(_projects),
                [{"id": i, "title": f"Demo team {i}", "description": None} for i in ids],
            )
            projects, rows = [], []
            for n, project_id in enumerate(ids):
                members = [people[(n + k) % len(people)] for k in range(PROJECT_MEMBERS)]
                members = list(dict.fromkeys(members))
                for k, user_id in enumerate(members):
                    role = Role.OWNER if k == 0 else Role.MEMBER
                    rows.append({"project_id": project_id, "user_id": user_id, "role": role})
                projects.append((project_id, members))
            await conn.execute(insert(_members), rows)
            await self._follow_sequence(conn, _projects)
        return projects

    async def tasks(
        self,
        progress: Progress,
        team: list[tuple[int, list[int]]],
        team_tasks: int,
        projects: list[tuple[int, list[int]]],
        others: int,
    ) -> None:
        """The team's tasks, then the others', `PROJECT_TASKS` to a project."""
        creator = self.people["alice@example.com"]

        def row(n: int, rng: random.Random) -> tuple[Any, ...]:
            if n < team_tasks:
                project_id, members = team[n % len(team)]
            else:
                project_id, members = projects[(n - team_tasks) // PROJECT_TASKS]
            title = " ".join(["Task", *_words(rng, rng.randint(1, 3))])
            description = None if n % 5 == 4 else " ".join(_words(rng, rng.randint(4, 12)))
            if n % RARE_EVERY == 7:
                description = f"{description or ''} {RARE_WORD}".strip()
            created = _EPOCH + timedelta(seconds=n * 37 + rng.randint(0, 36))
            due = None if n % 4 == 1 else created + timedelta(days=rng.randint(-30, 365))
            return (
                project_id,
                title,
                description,
                _STATUSES[rng.randrange(len(_STATUSES))],
                _PRIORITIES[rng.randrange(len(_PRIORITIES))],
                None if n % 4 == 0 else members[rng.randrange(len(members))],
                creator,
                due,
                created,
                created,
            )

        columns = [
            "project_id", "title", "description", "status", "priority", "assignee_id",
            "created_by_id", "due_date", "created_at", "updated_at",
        ]  # fmt: skip
        await self._load(progress, "tasks", table_of(Task), columns, team_tasks + others, row)

    async def products(self, progress: Progress, count: int) -> list[tuple[int, int]]:
        """Products DEMO-000001 … (created once), their stock recorded by the inventory; the
        (id, price) of every demo product."""
        _products = table_of(Product)
        async with self.engine.begin() as conn:
            existing = {
                sku
                for (sku,) in await conn.execute(
                    select(_products.c.sku).where(_products.c.sku.like("DEMO-%"))
                )
            }
        wanted = [n for n in range(count) if _sku(n) not in existing]

        def row(n: int, rng: random.Random) -> tuple[Any, ...]:
            i = wanted[n]
            description = " ".join(_words(rng, rng.randint(3, 10)))
            if i % RARE_EVERY == 7:
                description += f" {RARE_WORD}"
            name = " ".join(_words(rng, rng.randint(1, 3))).title()
            return (_sku(i), name, description, _price(i), 0, _EPOCH, _EPOCH)

        # Stock starts at 0; the inventory records it, with its ledger row.
        columns = ["sku", "name", "description", "price_cents", "stock", "created_at", "updated_at"]
        actor = self.people["admin@example.com"]

        async with self.engine.begin() as conn:
            first_id = await self._next_id(conn, _products)

        async def stock(batch: _Batch, start: int, size: int) -> None:
            stocks = [
                (first_id + n, 0 if wanted[n] % 10 == 9 else 100)
                for n in range(start, start + size)
            ]
            await inventory.record_initial_stocks(batch.executor, stocks=stocks, actor_id=actor)

        await self._load(
            progress,
            "products",
            _products,
            columns,
            len(wanted),
            row,
            first_id=first_id,
            after_batch=stock,
        )
        async with self.engine.begin() as conn:
            rows = await conn.execute(
                select(_products.c.id, _products.c.price_cents)
                .where(_products.c.sku.like("DEMO-%"), _products.c.deleted_at.is_(None))
                .order_by(_products.c.id)
            )
            return [(int(i), int(p)) for i, p in rows]

    async def orders(
        self,
        progress: Progress,
        count: int,
        people: list[int],
        catalog: list[tuple[int, int]],
    ) -> None:
        """Orders of one to three lines, with their lines; most are paid."""
        if not count:
            return
        if not catalog or not people:
            raise ValueError("orders need products (--products) and tasks or users to seed")
        bob = self.people["bob@example.com"]
        lines: list[tuple[int, int, int, int]] = []

        async with self.engine.begin() as conn:
            first_id = await self._next_id(conn, table_of(Order))

        def row(n: int, rng: random.Random) -> tuple[Any, ...]:
            order_id = first_id + n
            picked = {catalog[rng.randrange(len(catalog))] for _ in range(rng.randint(1, 3))}
            total = 0
            for product_id, price in sorted(picked):
                quantity = rng.randint(1, 3)
                lines.append((order_id, product_id, quantity, price))
                total += quantity * price
            status, reason = _ORDER_STATES[rng.randrange(len(_ORDER_STATES))]
            created = _EPOCH + timedelta(seconds=n * 29 + rng.randint(0, 28))
            settled = created + timedelta(seconds=rng.randint(1, 600))
            reserved = settled if status is not OrderStatus.FAILED else None
            user_id = bob if n % RARE_EVERY == 0 else people[n % len(people)]
            return (
                user_id,
                status.value,
                reason,
                total,
                created,
                settled,
                reserved,
                settled if status is OrderStatus.PAID else None,
                settled if status is OrderStatus.CANCELLED else None,
            )

        async def items(batch: _Batch, _start: int, _size: int) -> None:
            await batch.copy(table_of(OrderItem), _ITEM_COLUMNS, lines)
            lines.clear()

        columns = [
            "user_id", "status", "status_reason", "total_cents", "created_at",
            "updated_at", "reserved_at", "paid_at", "cancelled_at",
        ]  # fmt: skip
        await self._load(
            progress,
            "orders",
            table_of(Order),
            columns,
            count,
            row,
            first_id=first_id,
            after_batch=items,
        )

    async def finish(self) -> None:
        """The id sequences after the rows given ids here; on PostgreSQL VACUUM ANALYZE: the
        planner's statistics, the visibility map, and the GIN indexes' pending entries
        merged (a search would otherwise read them one by one)."""
        async with self.engine.begin() as conn:
            for table in (table_of(Project), table_of(Order), table_of(Product)):
                await self._follow_sequence(conn, table)
        if self.engine.dialect.name == "postgresql":
            async with self.engine.connect() as conn:
                autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await autocommit.execute(text("VACUUM ANALYZE"))

    async def _load(
        self,
        progress: Progress,
        label: str,
        table: Table,
        columns: list[str],
        count: int,
        row: Callable[[int, random.Random], tuple[Any, ...]],
        *,
        first_id: int | None = None,
        after_batch: Callable[[_Batch, int, int], Awaitable[None]] | None = None,
    ) -> None:
        """`count` rows made by `row(n, rng)`, in batches of `BATCH`, one transaction each;
        with `first_id`, row n gets the id first_id + n. `after_batch(batch, start, size)`
        runs in the batch's transaction."""
        if not count:
            return
        bar = progress.add_task(label, total=count)
        for start in range(0, count, BATCH):
            rng = random.Random(f"{label}-{start}")  # noqa: S311 (demo data)
            rows = [row(n, rng) for n in range(start, min(count, start + BATCH))]
            names = columns
            if first_id is not None:
                rows = [(first_id + start + k, *r) for k, r in enumerate(rows)]
                names = ["id", *columns]
            async with self._batch() as batch:
                await batch.copy(table, names, rows)
                if after_batch is not None:
                    await after_batch(batch, start, len(rows))
            progress.update(bar, advance=len(rows))

    @asynccontextmanager
    async def _batch(self) -> AsyncIterator[_Batch]:
        async with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                driver = (await conn.get_raw_connection()).driver_connection
                yield _Batch(DriverConnection(driver, self.engine.dialect, None), driver, conn)
            else:
                yield _Batch(DriverConnection(None, self.engine.dialect, conn), None, conn)

    async def _next_id(self, conn: AsyncConnection, table: Table) -> int:
        found = await conn.scalar(select(func.coalesce(func.max(table.c.id), 0)))
        return int(found or 0) + 1

    async def _follow_sequence(self, conn: AsyncConnection, table: Table) -> None:
        if self.engine.dialect.name != "postgresql":
            return
        highest = select(func.max(table.c.id)).scalar_subquery()
        sequence = func.pg_get_serial_sequence(table.name, "id")
        await conn.execute(select(func.setval(sequence, func.greatest(highest, 1))))
