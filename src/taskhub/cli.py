"""The `taskhub` command: the one entry point of every process."""

from __future__ import annotations

import asyncio
import getpass
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Annotated, Any

import typer
import uvicorn
from rich.console import Console

from taskhub.config import Settings, get_settings

app = typer.Typer(help="taskhub: task management and commerce API", no_args_is_help=True)
dlq_app = typer.Typer(
    help="Dead letters: list, replay or drop events the workers gave up on.",
    no_args_is_help=True,
)
app.add_typer(dlq_app, name="dlq")
streams_app = typer.Typer(
    help="Event stream partitions: status, and draining them to change STREAM_PARTITIONS.",
    no_args_is_help=True,
)
app.add_typer(streams_app, name="streams")
console = Console()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes")] = 1,
    reload: Annotated[bool, typer.Option(help="Reload on code changes (dev)")] = False,
) -> None:
    """Serve the API (one process unless --workers N).

    Forwarded headers are believed only from FORWARDED_ALLOW_IPS (uvicorn's own default
    would trust 127.0.0.1); with none listed, uvicorn does not read them at all.
    """
    settings = get_settings()
    settings.signing_key()
    proxies = settings.forwarded_allow_ips
    uvicorn.run(
        "taskhub.main:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers if not reload else None,
        reload=reload,
        loop="uvloop",
        http="httptools",
        access_log=False,
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
        server_header=False,
        timeout_graceful_shutdown=20,
        log_config=None,
    )


@app.command()
def worker() -> None:
    """Run an event worker: outbox relay, stream consumer and periodic jobs (needs REDIS_URL)."""
    from taskhub.events import build_registry
    from taskhub.messaging.binding import DeploymentMismatch
    from taskhub.messaging.worker import run_worker
    from taskhub.observability import configure_logging
    from taskhub.runtime import tune_gc
    from taskhub.tracing import configure_tracing

    settings = get_settings()
    if not settings.redis_url:
        console.print(
            "[red]REDIS_URL is not set: in the embedded shape the API process dispatches "
            "events itself, and no worker is needed.[/red]"
        )
        raise typer.Exit(2)
    configure_logging(json_logs=settings.environment != "dev", level=settings.log_level)
    configure_tracing(service_name="taskhub-worker", spans_file=settings.opentelemetry_spans_file)
    registry = build_registry(settings)
    tune_gc(settings.gc_gen0_threshold)
    try:
        _run(run_worker(settings, registry))
    except DeploymentMismatch as exc:
        logging.getLogger("taskhub.worker").critical("refusing to run: %s", exc)
        console.print(
            f"taskhub worker refuses to run: {exc}", style="red", markup=False, soft_wrap=True
        )
        raise typer.Exit(3) from None


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
) -> None:
    """Apply the database migrations (up to head by default)."""
    from taskhub.migrate import upgrade

    settings = get_settings()
    asyncio.run(upgrade(settings, revision))
    console.print(f"[green]database migrated to {revision}[/green]")


@app.command("create-superuser")
def create_superuser(
    email: Annotated[str | None, typer.Option(help="Email (prompted when absent)")] = None,
    password: Annotated[str | None, typer.Option(help="Password (prompted when absent)")] = None,
    full_name: Annotated[str | None, typer.Option(help="Display name")] = None,
) -> None:
    """Create a site admin, or promote and re-password an existing account."""
    from taskhub.seed import create_or_promote_superuser

    if email is None:
        email = typer.prompt("Email")
    if password is None:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise typer.BadParameter("the passwords differ")
    try:
        created = asyncio.run(
            create_or_promote_superuser(
                get_settings(), email=email, password=password, full_name=full_name
            )
        )
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print(f"[green]superuser {email} {'created' if created else 'updated'}[/green]")


@app.command("seed-demo")
def seed_demo(
    tasks: Annotated[int, typer.Option(help="Tasks to add", min=0)] = 30,
    products: Annotated[int, typer.Option(help="Products (DEMO-000001…) to have", min=0)] = 10,
    orders: Annotated[int, typer.Option(help="Orders to add", min=0)] = 0,
) -> None:
    """Create demo users and projects, then load tasks, products and orders (COPY on
    PostgreSQL, batches on SQLite; a million rows in minutes); prints the credentials."""
    from taskhub.seed import seed_demo as run_seed

    credentials = asyncio.run(
        run_seed(get_settings(), tasks=tasks, products=products, orders=orders, console=console)
    )
    console.print("[bold]Demo accounts (they can log in):[/bold]")
    for email, password, role in credentials:
        console.print(f"  {email:28} {password:20} {role}")


@dlq_app.command("list")
def dlq_list(
    limit: Annotated[int, typer.Option(help="How many to show", min=1)] = 50,
) -> None:
    """List dead letters, oldest first."""
    from taskhub.messaging import deadletters

    async def run(settings: Settings) -> list[deadletters.DeadLetter]:
        async with _dlq_backend(settings) as (redis, sessionmaker):
            if redis is not None:
                return await deadletters.list_all_dead(redis, settings.redis_prefix, limit=limit)
            return await deadletters.list_outbox_dead(sessionmaker, limit=limit)

    letters = asyncio.run(run(get_settings()))
    if not letters:
        console.print("no dead letters")
        return
    for letter in letters:
        console.print(
            f"{letter.id}  failures={letter.deliveries}  {letter.dead_at}\n"
            f"  error: {letter.error}\n  event: {letter.event}",
            markup=False,
            highlight=False,
        )


@dlq_app.command("replay")
def dlq_replay(
    entry_id: Annotated[
        str | None, typer.Argument(metavar="ID", help="Dead letter id (`p3/<entry id>`)")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Replay every dead letter")] = False,
) -> None:
    """Send dead letters back to be handled again (the handlers stay idempotent)."""
    from taskhub.messaging import deadletters

    target = _dlq_target(entry_id, all_)

    async def run(settings: Settings) -> int:
        async with _dlq_backend(settings) as (redis, sessionmaker):
            if redis is not None:
                prefix = settings.redis_prefix
                return await deadletters.replay_all_dead(redis, prefix, dead_id=target)
            return await deadletters.replay_outbox_dead(sessionmaker, row_id=_row_id(target))

    count = asyncio.run(run(get_settings()))
    console.print(f"replayed {count} dead letter(s)")
    if target is not None and count == 0:
        raise typer.Exit(1)


@dlq_app.command("drop")
def dlq_drop(
    entry_id: Annotated[
        str | None, typer.Argument(metavar="ID", help="Dead letter id (`p3/<entry id>`)")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Drop every dead letter")] = False,
) -> None:
    """Delete dead letters for good."""
    from taskhub.messaging import deadletters

    target = _dlq_target(entry_id, all_)

    async def run(settings: Settings) -> int:
        async with _dlq_backend(settings) as (redis, sessionmaker):
            if redis is not None:
                prefix = settings.redis_prefix
                return await deadletters.drop_all_dead(redis, prefix, dead_id=target)
            return await deadletters.drop_outbox_dead(sessionmaker, row_id=_row_id(target))

    count = asyncio.run(run(get_settings()))
    console.print(f"dropped {count} dead letter(s)")
    if target is not None and count == 0:
        raise typer.Exit(1)


def _dlq_target(entry_id: str | None, all_: bool) -> str | None:
    if (entry_id is None) == (not all_):
        raise typer.BadParameter("give either one ID or --all")
    return entry_id


def _row_id(target: str | None) -> int | None:
    if target is None:
        return None
    if not target.isdigit():
        raise typer.BadParameter("in the embedded shape a dead letter id is an outbox row id")
    return int(target)


@asynccontextmanager
async def _dlq_backend(settings: Settings) -> AsyncIterator[tuple[Any, Any]]:
    """Redis (full stack), or the sessionmaker (embedded)."""
    from taskhub.db import make_engine, make_sessionmaker

    if settings.redis_url is not None:
        async with _redis(settings) as redis:
            yield redis, None
        return
    engine = make_engine(settings, pool=False)
    try:
        yield None, make_sessionmaker(engine)
    finally:
        await engine.dispose()


@asynccontextmanager
async def _redis(settings: Settings) -> AsyncIterator[Any]:
    from taskhub.redis_client import make_redis

    redis = make_redis(settings, socket_timeout=10, socket_connect_timeout=5)
    try:
        yield redis
    finally:
        await redis.aclose()


def _stream_settings() -> Settings:
    settings = get_settings()
    if settings.redis_url is None:
        console.print("[red]REDIS_URL is not set: the embedded shape has no streams.[/red]")
        raise typer.Exit(2)
    return settings


@streams_app.command("status")
def streams_status() -> None:
    """Each partition's stream: entries, not yet delivered (lag), pending, dead letters."""
    from taskhub.messaging import partitions

    settings = _stream_settings()

    async def run() -> partitions.Status:
        async with _redis(settings) as redis:
            return await partitions.status(redis, settings)

    status = asyncio.run(run())
    console.print(status.render(), markup=False, highlight=False)


@streams_app.command("drain")
def streams_drain(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the consumers")] = 600,
) -> None:
    """Pause the relays, then wait until every partition is delivered and acknowledged.

    The API keeps writing events to the outbox meanwhile. Then restart the workers and API
    with the new STREAM_PARTITIONS, and run `taskhub streams resume`.
    """
    from taskhub.db import make_engine
    from taskhub.messaging import partitions

    settings = _stream_settings()

    async def run() -> bool:
        engine = make_engine(settings, pool=False)
        try:
            async with _redis(settings) as redis:
                return await partitions.drain(
                    redis, engine, settings, timeout=timeout, report=console.print
                )
        finally:
            await engine.dispose()

    if not asyncio.run(run()):
        console.print(
            "[red]not drained in time; the relays stay paused (run `taskhub streams resume` "
            "to publish again)[/red]"
        )
        raise typer.Exit(1)
    console.print(
        "[green]drained: every partition is delivered and acknowledged; the relays are "
        "paused. Restart the workers and the API with the new STREAM_PARTITIONS, then run "
        "`taskhub streams resume`.[/green]"
    )


@streams_app.command("resume")
def streams_resume() -> None:
    """Let the relays publish again (after `taskhub streams drain`)."""
    from taskhub.messaging import partitions

    settings = _stream_settings()

    async def run() -> None:
        async with _redis(settings) as redis:
            await partitions.resume(redis, settings)

    asyncio.run(run())
    console.print("relays resumed")


def _run(main: Coroutine[Any, Any, None]) -> None:
    """Run a long-lived coroutine on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        asyncio.run(main)
        return
    uvloop.run(main)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
