"""Service commands: ``serve``, ``worker``, ``migrate`` and the ``keys`` group.

Options override the settings read from ``AUTODISTILLER_*`` environment variables.
"""

from __future__ import annotations

import logging
import signal
import threading
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

cli = typer.Typer(no_args_is_help=True)
keys_cli = typer.Typer(help="Create, list and revoke API keys (stored hashed).", no_args_is_help=True)
cli.add_typer(keys_cli, name="keys")

DataDir = Annotated[Path | None, typer.Option(help="data directory (database, datasets, artifacts)")]
DatabaseUrl = Annotated[str | None, typer.Option(help="SQLAlchemy URL, e.g. postgresql+psycopg://...")]
ExecutorOpt = Annotated[str | None, typer.Option("--executor", help="local | ray | inline")]
RayAddress = Annotated[str | None, typer.Option(help="Ray cluster address, e.g. 127.0.0.1:6380")]


class KeyScopeOpt(StrEnum):
    """``app.domain.KeyScope`` for the CLI (importing the domain loads the KD config models, 0.1 s
    at every CLI start)."""

    read = "read"
    write = "write"
    admin = "admin"


def _settings(**overrides: Any) -> Any:
    from pydantic import ValidationError

    from app.settings import Settings

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default 8000)")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    executor: ExecutorOpt = None,
    ray_address: RayAddress = None,
    worker: Annotated[bool, typer.Option("--worker/--no-worker", help="also run the executor here")] = True,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="no API keys (loopback hosts only; logged)")
    ] = False,
    public_reads: Annotated[
        bool,
        typer.Option(
            "--public-reads",
            help="GET routes open without a key and show every key's objects (logged loudly); "
            "writes still need a key",
        ),
    ] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
    workers: Annotated[
        int | None, typer.Option(help="API processes (default 1; one per core for throughput)")
    ] = None,
) -> None:
    """Run the API (and, unless --no-worker, the job executor) with embedded defaults."""
    import uvicorn

    from app.main import create_app

    settings = _settings(
        host=host,
        port=port,
        data_dir=data_dir,
        database_url=database_url,
        executor=executor,
        ray_address=ray_address,
        embedded_worker=worker,
        auth=False if no_auth else None,
        public_reads=True if public_reads else None,
        log_level=log_level,
        api_workers=workers,
    )
    _logging(settings.log_level)
    url = f"http://{settings.host}:{settings.port}"
    typer.echo(f"AutoDistiller on {url} (docs at {url}/docs); data in {settings.data_dir}")
    if settings.api_workers > 1:
        _serve_processes(settings)
        return
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=int(settings.worker.stop_grace_s) + 10,
    )


def _serve_processes(settings: Any) -> None:
    """``serve --workers N``: N uvicorn worker processes and, if asked, one job-executor process.

    The database is migrated and the shipped meta-learner registered once, here, before the
    processes start (so they never race to do it); each API process then builds the app from the
    same settings, passed as ``AUTODISTILLER_*`` environment variables.
    """
    import os
    import subprocess
    import sys

    import uvicorn

    from app.services.container import Services

    services = Services.create(settings)  # migrates when auto_migrate is on
    try:
        services.meta_learners.bootstrap()
    finally:
        services.close()
    env = {
        "AUTODISTILLER_DATA_DIR": str(settings.data_dir),
        "AUTODISTILLER_AUTH": str(settings.auth).lower(),
        "AUTODISTILLER_PUBLIC_READS": str(settings.public_reads).lower(),
        "AUTODISTILLER_EXECUTOR": settings.executor,
        "AUTODISTILLER_LOG_LEVEL": settings.log_level,
        "AUTODISTILLER_AUTO_MIGRATE": "false",
        "AUTODISTILLER_EMBEDDED_WORKER": "false",
        "AUTODISTILLER_HOST": settings.host,
    }
    if settings.database_url:
        env["AUTODISTILLER_DATABASE_URL"] = settings.database_url
    if settings.ray_address:
        env["AUTODISTILLER_RAY_ADDRESS"] = settings.ray_address
    os.environ.update(env)  # the uvicorn workers are spawned with this environment
    executor = None
    if settings.embedded_worker:
        executor = subprocess.Popen([sys.executable, "-m", "app", "worker"], env=os.environ.copy())
    try:
        uvicorn.run(
            "app.main:app_from_env",
            factory=True,
            workers=settings.api_workers,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            timeout_graceful_shutdown=int(settings.worker.stop_grace_s) + 10,
        )
    finally:
        if executor is not None:
            executor.terminate()  # the worker stops gracefully: running jobs go back to the queue
            try:
                executor.wait(timeout=settings.worker.stop_grace_s + 10)
            except subprocess.TimeoutExpired:
                executor.kill()


@cli.command("worker")
def worker_command(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    executor: ExecutorOpt = None,
    ray_address: RayAddress = None,
    once: Annotated[bool, typer.Option("--once", help="run queued jobs, then exit")] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
) -> None:
    """Run the job executor without the API (several workers may share one database)."""
    settings = _settings(
        data_dir=data_dir,
        database_url=database_url,
        executor=executor,
        ray_address=ray_address,
        log_level=log_level,
    )
    _logging(settings.log_level)
    run_worker(settings, once=once)


def run_worker(settings: Any, *, once: bool = False, runners: Any = None) -> None:
    """Serve the queue until SIGINT/SIGTERM (running jobs are stopped and requeued)."""
    from app.jobs.runners import RUNNERS
    from app.services.container import Services

    services = Services.create(settings)
    try:
        services.meta_learners.bootstrap()
        executor = services.build_executor(runners=runners or RUNNERS)
        services.start_search_driver()  # searches advance where their trial jobs finish
        if once:
            executor.dispatcher.run_until_idle(timeout=float(settings.limits.max_time_budget_s))
            executor.dispatcher.shutdown()
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        executor.dispatcher.run(stop)
    finally:
        services.close()


@cli.command()
def migrate(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Apply the database migrations (the server also does this at start-up)."""
    from app.db.engine import Database
    from app.db.migrate import upgrade

    settings = _settings(data_dir=data_dir, database_url=database_url)
    db = Database(settings.resolved_database_url)
    try:
        upgrade(db.engine)
    finally:
        db.dispose()
    typer.echo("database is at the latest revision")


def _store(data_dir: Path | None, database_url: str | None) -> Any:
    from app.db.engine import Database
    from app.db.migrate import upgrade
    from app.store import Store

    settings = _settings(data_dir=data_dir, database_url=database_url)
    db = Database(settings.resolved_database_url)
    upgrade(db.engine)
    return Store(db)


@keys_cli.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="who or what uses the key")],
    scope: Annotated[
        KeyScopeOpt,
        typer.Option(
            "--scope",
            help="read: list and download its own objects; write: also create, cancel, delete them; "
            "admin: every key's objects, and meta-learner refits",
        ),
    ] = KeyScopeOpt.write,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create an API key; it is printed once and only its hash is stored."""
    store = _store(data_dir, database_url)
    key, token = store.api_keys.create(name, scope.value)
    typer.echo(
        f"created {key.scope.value} key {key.id} ({key.name}); send it as X-API-Key (shown only now):",
        err=True,
    )
    typer.echo(token)


@keys_cli.command("list")
def keys_list(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """List keys (ids, names, scopes, prefixes; never the keys themselves)."""
    for key in _store(data_dir, database_url).api_keys.list():
        state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
        typer.echo(f"{key.id}  {key.name}  {key.scope.value}  adk_{key.prefix}_…  {state}")


@keys_cli.command("revoke")
def keys_revoke(key_id: str, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Revoke a key by id."""
    from app.errors import NotFoundError

    try:
        key = _store(data_dir, database_url).api_keys.revoke(key_id)
    except NotFoundError as exc:
        raise typer.BadParameter(exc.message) from exc
    typer.echo(f"revoked {key.id} ({key.name})")
