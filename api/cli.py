"""mapi-ews-admin: serve, migrate, create-system-admin, export-schema."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import uvicorn
from pydantic import ValidationError

from api import db
from api.errors import UserErrors
from api.observability import configure_logging
from api.settings import Settings

T = TypeVar("T")


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in error.errors())
        sys.exit(f"mapi-ews-admin: configuration: {problems}")


async def _with_database(settings: Settings, work: Callable[[], Awaitable[T]]) -> T:
    await db.open_database(settings)
    try:
        return await work()
    finally:
        await db.close_database()


def serve(args: argparse.Namespace) -> None:
    settings = _settings()
    configure_logging(json_lines=not settings.is_development)
    if settings.uses_embedded_sqlite:
        asyncio.run(db.migrate_database(settings))  # the embedded default keeps itself current
    if args.demo:
        from api.services.demo import load_demo

        signins = asyncio.run(_with_database(settings, load_demo))
        if signins is None:
            print("Demo: the database already has data; leaving it as it is.")
        else:
            print(
                f"Demo loaded. Open http://{args.host}:{args.port}/graphql and sign in with the "
                f"`login` mutation:\n"
                f"  domain administrator:            {signins.domain_admin}\n"
                f"  administrator without MANAGE_MAPI_EWS: {signins.read_only_admin}\n"
                f"  system administrator:            {signins.system_admin}\n"
                f"  password (all three):            {signins.password}",
                flush=True,
            )
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,
        proxy_headers=True,
    )


def migrate(_: argparse.Namespace) -> None:
    settings = _settings()
    configure_logging(json_lines=False)
    asyncio.run(db.migrate_database(settings))
    print("Migrations applied.")


def _read_new_password() -> str:
    if not sys.stdin.isatty():
        lines = sys.stdin.read().splitlines()
        if not lines:
            sys.exit("create-system-admin: no password on standard input")
        if len(lines) > 1 and lines[1] != lines[0]:
            sys.exit("create-system-admin: the two password lines differ")
        return lines[0]
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat it: ") != first:
        sys.exit("create-system-admin: the passwords differ")
    return first


def create_system_admin(args: argparse.Namespace) -> None:
    from api.services.sessions import create_system_admin as create

    settings = _settings()
    password = _read_new_password()
    try:
        admin = asyncio.run(
            _with_database(settings, lambda: create(username=args.username, password=password))
        )
    except UserErrors as refused:
        sys.exit(f"create-system-admin: {refused}")
    print(f"System administrator {admin.username} created.")


def export_schema(args: argparse.Namespace) -> None:
    from api.graphql.schema import schema_sdl

    target = Path(args.path)
    sdl = schema_sdl()
    if args.check:
        current = target.read_text() if target.exists() else ""
        if current != sdl:
            sys.exit(
                f"{target} differs from the schema in the code: run `mapi-ews-admin export-schema`"
            )
        print(f"{target} is up to date.")
        return
    target.write_text(sdl)
    print(f"Wrote {target}.")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="mapi-ews-admin", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)

    run = commands.add_parser("serve", help="run the server (uvicorn)")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--workers", type=int, default=1)
    run.add_argument(
        "--demo", action="store_true", help="load a demo domain into an empty database"
    )
    run.set_defaults(handler=serve)

    commands.add_parser("migrate", help="apply database migrations").set_defaults(handler=migrate)

    admin = commands.add_parser("create-system-admin", help="create a system administrator")
    admin.add_argument("username")
    admin.set_defaults(handler=create_system_admin)

    export = commands.add_parser("export-schema", help="write schema.graphql from the code")
    export.add_argument("--check", action="store_true", help="fail when the file differs")
    export.add_argument("--path", default="schema.graphql")
    export.set_defaults(handler=export_schema)
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    args.handler(args)
