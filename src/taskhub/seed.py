"""Superuser creation and demo data for the CLI."""

from __future__ import annotations

from rich.console import Console
from rich.progress import Progress
from sqlalchemy import select

from taskhub.auth import service as users
from taskhub.auth.schemas import SignupIn
from taskhub.auth.tokens import end_all_tokens
from taskhub.catalog import service as catalog
from taskhub.config import Settings
from taskhub.db import make_engine, make_sessionmaker
from taskhub.models import Product, Project, ProjectMember, Role, Task, User
from taskhub.models.task import TaskPriority, TaskStatus
from taskhub.security import hash_password

DEMO_USERS = [
    ("admin@example.com", "Admin-pass-123", "site admin", True),
    ("alice@example.com", "Alice-pass-123", "project owner", False),
    ("bob@example.com", "Bob-pass-1234", "project member", False),
    ("carol@example.com", "Carol-pass-123", "project viewer", False),
]


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
    settings: Settings, *, tasks: int, products: int, console: Console
) -> list[tuple[str, str, str]]:
    """Idempotently create demo users (real bcrypt hashes), a project, tasks and products."""
    engine = make_engine(settings, pool=False)
    credentials: list[tuple[str, str, str]] = []
    try:
        sessionmaker = make_sessionmaker(engine)
        async with sessionmaker() as session, session.begin():
            people: dict[str, User] = {}
            for email, password, role, admin in DEMO_USERS:
                user = await users.get_user_by_email(session, email=email)
                if user is None:
                    user = await users.create_user(
                        session,
                        email=email,
                        password=password,
                        full_name=email.split("@")[0].title(),
                        is_superuser=admin,
                        rounds=settings.bcrypt_rounds,
                    )
                else:
                    user.hashed_password = await hash_password(
                        password, rounds=settings.bcrypt_rounds
                    )
                    user.is_active = True
                people[email] = user
                credentials.append((email, password, role))
            project = await session.scalar(select(Project).where(Project.title == "Demo project"))
            if project is None:
                project = Project(title="Demo project", description="Seeded by taskhub seed-demo")
                session.add(project)
                await session.flush()
                for email, role in (
                    ("alice@example.com", Role.OWNER),
                    ("bob@example.com", Role.MEMBER),
                    ("carol@example.com", Role.VIEWER),
                ):
                    session.add(
                        ProjectMember(project_id=project.id, user_id=people[email].id, role=role)
                    )
            await session.flush()
            project_id = project.id
            assignees = [people["alice@example.com"].id, people["bob@example.com"].id, None]
            statuses = list(TaskStatus)
            priorities = list(TaskPriority)
        batch = 1000
        with Progress(console=console, transient=True) as progress:
            bar = progress.add_task("tasks", total=tasks)
            done = 0
            while done < tasks:
                n = min(batch, tasks - done)
                async with sessionmaker() as session, session.begin():
                    session.add_all(
                        Task(
                            project_id=project_id,
                            title=f"Demo task {done + i + 1}",
                            description="Generated demo task",
                            status=statuses[(done + i) % len(statuses)],
                            priority=priorities[(done + i) % len(priorities)],
                            assignee_id=assignees[(done + i) % len(assignees)],
                        )
                        for i in range(n)
                    )
                done += n
                progress.update(bar, advance=n)
            bar = progress.add_task("products", total=products)
            admin_id = people["admin@example.com"].id
            async with sessionmaker() as session, session.begin():
                for i in range(products):
                    sku = f"DEMO-{i + 1:04d}"
                    if await session.scalar(select(Product.id).where(Product.sku == sku)) is None:
                        await catalog.create_product(
                            session,
                            sku=sku,
                            name=f"Demo product {i + 1}",
                            description=None,
                            price_cents=500 + 100 * i,
                            stock=100,
                            actor_id=admin_id,
                        )
                    progress.update(bar, advance=1)
    finally:
        await engine.dispose()
    return credentials
