"""The `taskhub` command: the one entry point of every process."""

from __future__ import annotations

import asyncio
import getpass
from typing import Annotated

import typer
import uvicorn
from rich.console import Console

from taskhub.config import get_settings

app = typer.Typer(help="taskhub: task management and commerce API", no_args_is_help=True)
console = Console()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes")] = 1,
    reload: Annotated[bool, typer.Option(help="Reload on code changes (dev)")] = False,
) -> None:
    """Serve the API (one process unless --workers N)."""
    settings = get_settings()
    settings.signing_key()
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
        proxy_headers=True,
        server_header=False,
        timeout_graceful_shutdown=20,
        log_config=None,
    )


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
    tasks: Annotated[int, typer.Option(help="Tasks to create in the demo project")] = 30,
    products: Annotated[int, typer.Option(help="Products to create")] = 10,
) -> None:
    """Create demo users, a project with tasks, and products; prints the credentials."""
    from taskhub.seed import seed_demo as run_seed

    credentials = asyncio.run(
        run_seed(get_settings(), tasks=tasks, products=products, console=console)
    )
    console.print("[bold]Demo accounts (they can log in):[/bold]")
    for email, password, role in credentials:
        console.print(f"  {email:28} {password:20} {role}")


def main() -> None:
    """Console-script entry point."""
    app()
