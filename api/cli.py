"""mapi-ews-admin: serve, migrate, create-system-admin, gateway tokens, prune-login-events,
reclaim-idle, repair-mapi-ews-counts, sync-accounts, simulate-gateway, export-schema."""

from __future__ import annotations

import argparse
import asyncio
import atexit
import getpass
import logging
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import uvicorn
from pydantic import ValidationError

from api import db, redis_client
from api.errors import UserErrors
from api.metrics import MULTIPROCESS_DIR
from api.observability import configure_logging, uvicorn_log_config
from api.settings import Settings

T = TypeVar("T")


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in error.errors())
        sys.exit(f"mapi-ews-admin: configuration: {problems}")


def _this_program() -> str:
    """How to run this program again from the current directory: the installed command if this
    is it, else this Python with -m api (`make run` starts .venv/bin/python -m api)."""
    if Path(sys.argv[0]).name == "mapi-ews-admin":
        return shlex.quote(sys.argv[0])
    python = os.path.relpath(sys.executable)
    return f"{shlex.quote(python if not python.startswith('..') else sys.executable)} -m api"


async def _with_database(settings: Settings, work: Callable[[], Awaitable[T]]) -> T:
    await db.open_database(settings)
    try:
        return await work()
    finally:
        await db.close_database()


async def _check_redis_kind(url: str, *, cluster: bool) -> None:
    client = redis_client.connect(url, cluster=cluster)
    try:
        await redis_client.check_kind(client)
    finally:
        await client.aclose()


def serve(args: argparse.Namespace) -> None:
    settings = _settings()
    configure_logging(json_lines=not settings.is_development)
    try:
        settings.signing_key  # noqa: B018 - made now (in development), before any worker starts
    except (OSError, ValueError) as error:
        sys.exit(
            f"mapi-ews-admin: no signing key: {error} (set MAPI_EWS_SECRET_KEY, or "
            "MAPI_EWS_DATA_DIR to a folder this user may write)"
        )
    if settings.uses_embedded_sqlite:
        asyncio.run(db.migrate_database(settings))  # the embedded default keeps itself current
    if settings.redis_url:
        # Each worker's startup checks it again; a wrong kind is said here once, as one line.
        try:
            asyncio.run(_check_redis_kind(settings.redis_url, cluster=settings.redis_cluster))
        except redis_client.ConfigurationError as error:
            sys.exit(f"mapi-ews-admin: {error}")
    if args.workers > 1 and not settings.redis_url:
        logging.getLogger("api.cli").warning(
            "MAPI_EWS_REDIS_URL is not set: with %d workers, a subscription sees only the events "
            "of the worker it is connected to",
            args.workers,
        )
    if args.demo:
        from api.services.demo import load_demo

        signins = asyncio.run(_with_database(settings, load_demo))
        if signins is None:
            print("Demo: the database already has data; leaving it as it is.")
        else:
            print(
                f"Demo loaded. Open http://{args.host}:{args.port}/ (the MAPI/EWS tab) or "
                f"http://{args.host}:{args.port}/graphql (GraphiQL) and sign in:\n"
                f"  domain administrator:            {signins.domain_admin}\n"
                f"  administrator without MANAGE_MAPI_EWS: {signins.read_only_admin}\n"
                f"  system administrator:            {signins.system_admin}\n"
                f"  password (all three):            {signins.password}\n"
                f"A gateway token (shown once), to report logins as a MAPI/EWS front end would:\n"
                f"  curl -s http://{args.host}:{args.port}/graphql "
                f"-H 'Authorization: Bearer {signins.gateway_token}' "
                f"-H 'Content-Type: application/json' "
                f"-d '{_DEMO_REPORT % signins.enabled_address}'\n"
                f"A gateway holding MAPI/EWS sessions, to watch a disable close them "
                f"(docs/gateways.md):\n"
                f"  MAPI_EWS_GATEWAY_TOKEN={signins.gateway_token} {_this_program()} "
                f"simulate-gateway --url http://{args.host}:{args.port} --sessions 6 "
                f"--touch-seconds 30 {' '.join(signins.enabled_addresses[:3])}",
                flush=True,
            )
    if args.workers > 1:
        _share_metrics_between_workers()
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        # The same lines from every worker: uvicorn applies this in each process it starts.
        log_config=uvicorn_log_config(json_lines=not settings.is_development),
        access_log=settings.access_log,
        proxy_headers=True,
        # Only these proxies' X-Forwarded-For is believed: sign-in throttling per client address
        # needs the client's, not the proxy's (README, Operations).
        forwarded_allow_ips=settings.forwarded_allow_ips,
        # Events are small JSON messages sent to many dashboards: compressing each copy costs
        # CPU per subscriber and a zlib context per connection (half the memory of a thousand
        # dashboards, measured) for little saving.
        ws_per_message_deflate=False,
    )


def _share_metrics_between_workers() -> None:
    """prometheus_client's multiprocess mode: every worker keeps its values in files in one
    folder, set before the workers start (they import the library with it) and emptied of an
    earlier run's values; a folder made here is removed at exit."""
    folder = os.environ.get(MULTIPROCESS_DIR)
    if folder:
        for stale in Path(folder).glob("*.db"):
            stale.unlink()
        return
    folder = tempfile.mkdtemp(prefix="mapi-ews-metrics-")
    os.environ[MULTIPROCESS_DIR] = folder
    atexit.register(shutil.rmtree, folder, ignore_errors=True)


_DEMO_REPORT = (
    '{"query": "mutation { recordProtocolLogin(input: {emailAddress: \\"%s\\", '
    'protocol: MAPI}) { allowed userErrors { message } } }"}'
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
    from api.services.sign_ins import create_system_admin as create

    settings = _settings()
    password = _read_new_password()
    try:
        admin = asyncio.run(
            _with_database(settings, lambda: create(username=args.username, password=password))
        )
    except UserErrors as refused:
        sys.exit(f"create-system-admin: {refused}")
    print(f"System administrator {admin.username} created.")


def create_gateway_token(args: argparse.Namespace) -> None:
    from api.services import gateways

    try:
        token = asyncio.run(
            _with_database(
                _settings(),
                lambda: gateways.create_gateway_token(actor=_cli_actor(), name=args.name),
            )
        )
    except UserErrors as refused:
        sys.exit(f"create-gateway-token: {refused}")
    print(token)  # alone on stdout, for scripts; only its hash is stored


def revoke_gateway_token(args: argparse.Namespace) -> None:
    from api.services import gateways

    settings = _settings()
    try:
        revoked = asyncio.run(
            _with_database(
                settings,
                lambda: gateways.revoke_gateway_token(actor=_cli_actor(), name=args.name),
            )
        )
    except ValueError as error:
        sys.exit(f"revoke-gateway-token: {error}")
    if not revoked:
        sys.exit(f"revoke-gateway-token: no live gateway token named {args.name}")
    print(
        f"Gateway token {args.name} revoked; servers stop accepting it within "
        f"{settings.gateway_token_cache_seconds} s."
    )


def list_gateway_tokens(_: argparse.Namespace) -> None:
    from api.services import gateways

    for token in asyncio.run(_with_database(_settings(), gateways.gateway_tokens)):
        state = f"revoked {token.revoked_at:%Y-%m-%d %H:%M}" if token.revoked_at else "live"
        created = f"created {token.created_at:%Y-%m-%d %H:%M} by {token.created_by}"
        print(f"{token.name}\t{state}\t{created}")


def prune_login_events(args: argparse.Namespace) -> None:
    from api.services.login_history import prune_login_events as prune

    settings = _settings()
    days = args.older_than_days or settings.login_event_retention_days
    pruned = asyncio.run(_with_database(settings, lambda: prune(older_than=timedelta(days=days))))
    for day in pruned.dropped:
        print(f"Dropped the partition of {day.day} (about {day.estimated_rows} login events).")
    print(f"Deleted {pruned.deleted} login event(s) older than {days} days.")


def repair_mapi_ews_counts(_: argparse.Namespace) -> None:
    from api.services.domains import repair_enabled_counts

    settings = _settings()
    repaired = asyncio.run(_with_database(settings, repair_enabled_counts))
    for domain in repaired:
        print(f"{domain.domain}: {domain.kept} -> {domain.counted} MAPI/EWS accounts")
    print(f"Repaired {len(repaired)} domain count(s).")


def reclaim_idle(_: argparse.Namespace) -> None:
    from api.events import event_bus
    from api.services.event_payloads import PAYLOADS
    from api.services.reclaim import reclaim_by_policy

    settings = _settings()
    configure_logging(json_lines=not settings.is_development)

    async def work() -> list[str]:
        # Published like a server's changes (through Redis where one is configured), so open
        # dashboards see them and the gateways are told to end the sessions at once.
        events = event_bus(settings, payloads=PAYLOADS)
        await events.start()
        try:
            results = await reclaim_by_policy(events=events)
        finally:
            await events.stop()
        lines = []
        for domain, done in results:
            names = ", ".join(a.username for a in done.accounts[:10])
            more = f" and {len(done.accounts) - 10} more" if len(done.accounts) > 10 else ""
            lines.append(
                f"{domain.name}: {len(done.accounts)} account(s) idle for "
                f"{domain.mapi_ews_idle_reclaim_days} days or more lost MAPI/EWS"
                + (f" ({names}{more})" if names else "")
                + f"; {done.sessions_ending} open session(s) told to end; "
                f"{done.usage.enabled} in use now."
            )
        return lines or ["No domain has an idle policy (mapiEwsIdleReclaimDays): nothing to do."]

    for line in asyncio.run(_with_database(settings, work)):
        print(line)


def sync_accounts(args: argparse.Namespace) -> None:
    from api.sync_accounts import run

    settings = _settings()
    configure_logging(json_lines=not settings.is_development)
    run(
        settings,
        domain=args.domain,
        file=args.file,
        remove_missing=args.remove_missing,
        dry_run=args.dry_run,
        actor=_cli_actor(),
    )


def simulate_gateway(args: argparse.Namespace) -> None:
    from api.gateway_simulator import Simulator, read_token, simulate

    configure_logging(json_lines=False)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # it prints its own steps
    protocols = ("MAPI", "EWS") if args.protocol == "both" else (args.protocol,)
    simulator = Simulator(
        url=args.url.rstrip("/"),
        token=read_token(args.token_file),
        accounts=args.accounts,
        sessions=args.sessions or len(args.accounts),
        protocols=protocols,
        client_names=args.client_name or (),
        touch_seconds=args.touch_seconds,
        json_lines=args.json,
    )
    if args.session_prefix:
        simulator.prefix = args.session_prefix
    asyncio.run(simulate(simulator, args.duration))


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return number


def _cli_actor() -> str:
    """Who the audit log names for a command run from a shell."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # a container user without a name
        return "cli"


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

    create = commands.add_parser(
        "create-gateway-token", help="create a gateway token and print it (shown once)"
    )
    create.add_argument("name")
    create.set_defaults(handler=create_gateway_token)

    revoke = commands.add_parser("revoke-gateway-token", help="revoke a gateway token")
    revoke.add_argument("name")
    revoke.set_defaults(handler=revoke_gateway_token)

    commands.add_parser("list-gateway-tokens", help="list gateway tokens").set_defaults(
        handler=list_gateway_tokens
    )

    prune = commands.add_parser(
        "prune-login-events",
        help="delete login events past the retention and, on PostgreSQL, create the coming "
        "days' partitions (run it daily)",
    )
    prune.add_argument(
        "--older-than-days",
        type=_positive,
        default=None,
        help="default: MAPI_EWS_LOGIN_EVENT_RETENTION_DAYS (90)",
    )
    prune.set_defaults(handler=prune_login_events)

    commands.add_parser(
        "reclaim-idle",
        help="apply every domain's mapiEwsIdleReclaimDays: disable idle accounts (run it daily)",
    ).set_defaults(handler=reclaim_idle)

    commands.add_parser(
        "repair-mapi-ews-counts",
        help="recount each domain's MAPI/EWS accounts (after an import that wrote them directly)",
    ).set_defaults(handler=repair_mapi_ews_counts)

    syncing = commands.add_parser(
        "sync-accounts",
        help="make a domain's accounts match the mail server's list (CSV or JSON Lines)",
        description="FILE is CSV with a header (username,name,externalId,isDomainAdmin) or JSON "
        "Lines with the same keys. Accounts are created, updated and renamed (same externalId, "
        "new username) as the file says; a bad line changes nothing.",
    )
    syncing.add_argument("domain")
    syncing.add_argument("file")
    syncing.add_argument(
        "--remove-missing",
        action="store_true",
        help="also remove the domain's accounts the file does not name (their seats are freed)",
    )
    syncing.add_argument(
        "--dry-run", action="store_true", help="print what would change, and change nothing"
    )
    syncing.set_defaults(handler=sync_accounts)

    sim = commands.add_parser(
        "simulate-gateway",
        help="a reference MAPI/EWS gateway: opens sessions, confirms them, closes what it is told",
        description="The gateway token is read from $MAPI_EWS_GATEWAY_TOKEN or --token-file.",
    )
    sim.add_argument("accounts", nargs="+", metavar="EMAIL", help="accounts to open sessions for")
    sim.add_argument("--url", default="http://127.0.0.1:8000", help="the API's base URL")
    sim.add_argument("--token-file", help="a file whose first line is the gateway token")
    sim.add_argument(
        "--sessions", type=_positive, default=None, help="sessions to open (default: one each)"
    )
    sim.add_argument("--protocol", choices=["MAPI", "EWS", "both"], default="both")
    sim.add_argument(
        "--client-name",
        action="append",
        help="the client of each session in turn (repeat it for several; default: Outlook for "
        "MAPI, Apple Mail or eM Client for EWS)",
    )
    sim.add_argument("--touch-seconds", type=float, default=60.0, help="confirm this often")
    sim.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    sim.add_argument("--session-prefix", help="session ids start with this (default: random)")
    sim.add_argument("--json", action="store_true", help="print JSON lines")
    sim.set_defaults(handler=simulate_gateway)

    export = commands.add_parser("export-schema", help="write schema.graphql from the code")
    export.add_argument("--check", action="store_true", help="fail when the file differs")
    export.add_argument("--path", default="schema.graphql")
    export.set_defaults(handler=export_schema)
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    args.handler(args)
