"""Real server processes on free ports of 127.0.0.1, stopped when the test ends."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from starlette.types import ASGIApp

ROOT = Path(__file__).resolve().parent.parent


NODE_CLIENTS = ROOT / "tests" / "js"


def node_with(package: str) -> str:
    """The `node` that runs tests/js's scripts, once `package` is installed there (npm ci
    --prefix tests/js); otherwise the test is skipped, or fails where
    MAPI_EWS_REQUIRE_NODE_CLIENTS says these clients must run (.ci/run)."""
    node = shutil.which("node")
    if node is None or not (NODE_CLIENTS / "node_modules" / package).is_dir():
        message = f"{package} is not installed: npm ci --prefix tests/js (Node.js 20)"
        if os.environ.get("MAPI_EWS_REQUIRE_NODE_CLIENTS"):
            pytest.fail(message)
        pytest.skip(message)
    return node


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]
    log: Path

    def output(self) -> str:
        return self.log.read_text()


@contextmanager
def running_server(
    env: dict[str, str],
    log: Path,
    *args: str,
    timeout: float = 30.0,
    port: int | None = None,
    command: tuple[str, ...] = (sys.executable, "-m", "api"),
    cwd: Path = ROOT,
) -> Iterator[Server]:
    """`serve` on `port` (a free one when None), its output appended to `log`; its data folder
    (a development signing key) beside `log` unless `env` names one. `command` is the CLI to
    run (another install's `mapi-ews-admin`, say), in `cwd`."""
    port = port or free_port()
    env = {"MAPI_EWS_DATA_DIR": str(log.parent), **env}
    with log.open("a") as out:
        process = subprocess.Popen(
            [*command, "serve", "--host", "127.0.0.1", "--port", str(port), *args],
            cwd=cwd,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited early:\n{server.output()}")
            try:
                if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not come up:\n{server.output()}")
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


async def run_cli(*args: str, env: dict[str, str]) -> str:
    """`mapi-ews-admin ARGS` in a subprocess with `env` added; its output, which must succeed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "api",
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()
    return output.decode()


@asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[str]:
    """`app` under a real uvicorn inside this process (so its state can be looked at), on a
    free port; its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


class PostgresProcess:
    """A PostgreSQL cluster of this test's own (Debian's binaries), so it can be killed and
    started again without touching the shared server. As root it runs as `postgres`."""

    def __init__(self, port: int) -> None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        if not found:
            raise FileNotFoundError("PostgreSQL's server binaries (Debian's postgresql package)")
        self.bin = found[-1].parent
        self.port = port
        self.folder = Path(tempfile.mkdtemp(prefix="mapi-ews-pg-"))
        self.data = self.folder / "data"
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_postgres:
            shutil.chown(self.folder, "postgres", "postgres")
        self.folder.chmod(0o755)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self.as_postgres, str(self.bin / tool), *args],
            check=True,
            capture_output=True,
            cwd=self.folder,
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=50"
        )
        log = str(self.folder / "postgres.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def kill(self) -> None:
        """Stops it the hard way: no shutdown checkpoint, recovery from WAL at the next start."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


class RedisProcess:
    """A Redis of this test's own on a free port, so it can be stopped and started again."""

    def __init__(self, binary: str, port: int, folder: Path) -> None:
        self.binary, self.port, self.folder = binary, port, folder
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


async def graphql_data(
    url: str, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
) -> dict[str, Any]:
    """POST a document to the server at `url`; its data, which must come without errors."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            f"{url}/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


async def metric(url: str, name: str) -> int:
    """The value of `mapi_ews_<name>` in the server's /metrics (every label given)."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{url}/metrics")).text
    lines = [li for li in text.splitlines() if li.startswith(f"mapi_ews_{name} ")]
    assert lines, f"/metrics has no mapi_ews_{name}:\n{text}"
    return int(float(lines[0].split()[1]))


class SimulatedGateway:
    """`mapi-ews-admin simulate-gateway --json` in a subprocess, its lines read as they come,
    each with the monotonic time it was read."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[tuple[float, dict[str, Any]]] = []

    async def until(self, step: str, count: int = 1) -> list[dict[str, Any]]:
        """Reads its JSON lines until `count` lines of `step` have come; those lines."""
        assert self.process.stdout is not None
        async with asyncio.timeout(20):
            while sum(1 for _, line in self.lines if line["step"] == step) < count:
                raw = await self.process.stdout.readline()
                assert raw, "simulate-gateway exited"
                self.lines.append((time.monotonic(), orjson.loads(raw)))
        return [line for _, line in self.lines if line["step"] == step]

    def last(self, step: str) -> float:
        """When the last line of `step` was read."""
        return max(at for at, line in self.lines if line["step"] == step)


@asynccontextmanager
async def simulated_gateway(
    url: str, token: str, folder: Path, accounts: list[str], *options: str
) -> AsyncIterator[SimulatedGateway]:
    """simulate-gateway against `url` for `accounts`, its token in a file (as a deployment would
    keep it), JSON lines; stopped (it closes its sessions) when the block ends."""
    token_file = folder / "gateway-token"
    token_file.write_text(token + "\n")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api", "simulate-gateway", "--url", url,
        "--token-file", str(token_file), "--json", *options, *accounts,
        cwd=ROOT, env=dict(os.environ), stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        yield SimulatedGateway(process)
    finally:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), 10)


def free_cluster_port() -> int:
    """A free port below 55536 whose cluster bus port (port + 10000) is free as well."""
    for _ in range(200):
        port = free_port()
        if port > 55535:
            port = 20000 + port % 30000
        try:
            for taken in (port, port + 10000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", taken))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


class RedisClusterProcesses:
    """A Redis Cluster of three primaries of this test run's own (`redis-server
    --cluster-enabled yes`, joined by `redis-cli --cluster create`), each node on a free port."""

    NODE_TIMEOUT_MS = 2000

    def __init__(self, nodes: int = 3) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="mapi-ews-cluster-"))
        self.ports = [free_cluster_port() for _ in range(nodes)]
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def urls(self) -> list[str]:
        return [f"redis://127.0.0.1:{port}/0" for port in self.ports]

    def start_node(self, port: int) -> None:
        folder = self.folder / str(port)
        folder.mkdir(exist_ok=True)
        self.processes[port] = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                *("--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
                *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
                *("--cluster-node-timeout", str(self.NODE_TIMEOUT_MS), "--dir", str(folder)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _answers(port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Redis Cluster node on {port} did not start")
            time.sleep(0.05)

    def start(self) -> None:
        for port in self.ports:
            self.start_node(port)
        subprocess.run(
            [
                shutil.which("redis-cli") or "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{port}" for port in self.ports),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
        )
        self.wait_until_ok()

    def wait_until_ok(self, timeout: float = 30) -> None:
        """Until every node says the cluster is ok (all slots covered, every node known)."""
        deadline = time.monotonic() + timeout
        while not all(
            b"cluster_state:ok" in self.cli(port, "CLUSTER", "INFO") for port in self.ports
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster did not come up")
            time.sleep(0.1)

    def cli(self, port: int, *command: str) -> bytes:
        return subprocess.run(
            [shutil.which("redis-cli") or "redis-cli", "-p", str(port), *command],
            capture_output=True,
            check=False,
        ).stdout

    def stop_node(self, port: int) -> None:
        process = self.processes.pop(port, None)
        if process is not None:
            process.kill()
            process.wait()

    def stop(self) -> None:
        for port in list(self.processes):
            self.stop_node(port)
        shutil.rmtree(self.folder, ignore_errors=True)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
