"""The service under test: migrated database (SQLite file, or PostgreSQL from EXEC_TEST_DATABASE),
the real app served by uvicorn on a loopback port, and an HTTP client talking to it."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from execution_service import migrate
from execution_service.app import create_app
from execution_service.context import AppContext
from execution_service.crypto import KeyRing
from execution_service.settings import Settings
from tests import pg
from tests.factories import Actor
from tests.fakes.binance import FakeBinance

BOOTSTRAP_KEY = "exs_b00757a9_" + "t" * 32
EXAMPLE_API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
EXAMPLE_API_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"


_LOOPBACK = ("127.", "::1", "localhost")
off_loopback: list[str] = []


@pytest.fixture(scope="session", autouse=True)
def network_stays_on_loopback() -> Iterator[None]:
    """Every connection and name lookup the suite makes must stay on this machine: anything else
    is refused and remembered, and the session fails at the end if there was any."""
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def allowed(host: object) -> bool:
        if host is None:
            return True
        name = host.decode() if isinstance(host, bytes) else str(host)
        return name.startswith(_LOOPBACK)

    def connect(self: socket.socket, address: object) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not allowed(address[0]):  # type: ignore[index]
            off_loopback.append(f"connect {address}")
            raise OSError(f"test network guard: {address} is not loopback")
        return real_connect(self, address)  # type: ignore[arg-type]

    def getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        if not allowed(host):
            off_loopback.append(f"lookup {host}")
            raise socket.gaierror(f"test network guard: {host} is not loopback")
        return real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    yield
    socket.socket.connect, socket.getaddrinfo = real_connect, real_getaddrinfo  # type: ignore[method-assign]
    assert not off_loopback, f"the suite tried to leave loopback: {off_loopback}"


SECRET_FIELDS = ("api_key", "api_secret", "passphrase", "password")
secrets_seen: set[str] = set()  # every credential value the suite stored, to look for elsewhere
secret_leaks: list[str] = []


def _leaks(text: str) -> list[str]:
    return [s for s in secrets_seen if s in text]


class _SecretScan(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record) + str(record.__dict__)
        except Exception:
            text = str(record.__dict__)
        for secret in _leaks(text):
            secret_leaks.append(f"log {record.name}: ...{secret[-4:]}")


@pytest.fixture(scope="session", autouse=True)
def secrets_stay_secret() -> Iterator[None]:
    """Every credential the suite stores is remembered (by wrapping KeyRing.encrypt); every
    response body, every log record and every stored response_data / error text is then searched
    for it. The session fails at the end on any hit."""
    real_encrypt = KeyRing.encrypt

    def encrypt(self: KeyRing, credentials: dict[str, str], owner: str) -> object:
        for field in SECRET_FIELDS:
            value = credentials.get(field, "")
            if len(value) >= 8:
                secrets_seen.add(value)
        return real_encrypt(self, credentials, owner)

    KeyRing.encrypt = encrypt  # type: ignore[method-assign,assignment]
    handler = _SecretScan(level=logging.DEBUG)
    logging.getLogger().addHandler(handler)
    ours = logging.getLogger("execution_service")
    level = ours.level
    ours.setLevel(logging.DEBUG)
    yield
    ours.setLevel(level)
    logging.getLogger().removeHandler(handler)
    KeyRing.encrypt = real_encrypt  # type: ignore[method-assign]
    assert not secret_leaks, f"credentials leaked: {secret_leaks[:10]}"


def _test_database() -> str:
    return os.environ.get("EXEC_TEST_DATABASE", "sqlite")


@pytest.fixture(scope="session")
def is_postgres() -> bool:
    return _test_database().startswith("postgresql")


async def fresh_database(tmp: Path, name: str) -> str:
    """A new, empty, migrated database of the kind under test (PostgreSQL: one of this run's,
    dropped with it)."""
    if not pg.target().startswith("postgresql"):
        url = f"sqlite+aiosqlite:///{tmp / (name + '.db')}"
    else:
        url = await pg.create(pg.name_for(name))
    await asyncio.to_thread(migrate.upgrade, url)
    return url


@pytest.fixture(scope="session")
async def database_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    if not pg.target().startswith("postgresql"):
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        await asyncio.to_thread(migrate.upgrade, url)
        yield url
        return
    free = await pg.free_connections()
    if free < pg.CONNECTIONS:
        pytest.exit(
            f"PostgreSQL has {free} free connections; the suite needs {pg.CONNECTIONS} at once "
            "(raise max_connections, or close other clients)",
            returncode=3,
        )
    url = await pg.create(pg.name_for(""))
    try:
        await asyncio.to_thread(migrate.upgrade, url)
        yield url
    finally:
        await pg.drop_all()  # this run's databases, the scratch ones too; never another's


def new_key_ring() -> KeyRing:
    return KeyRing([("t1", AESGCM.generate_key(bit_length=256))])


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    ring = new_key_ring()
    return Settings(
        env="test",
        database_url=database_url,
        encryption_keys=SecretStr(ring.format()),
        encryption_key_file=str(tmp_path_factory.mktemp("keys") / "keys"),
        bootstrap_admin_key=SecretStr(BOOTSTRAP_KEY),
        migrate_on_start=False,
        workers_enabled=False,
        exchange_timeout_ms=2000,
        exchange_retry_base_delay=0.01,
        # The whole session shares one fake Binance (one "IP", and one API key for every test
        # connection, so one account's order counts) and one app: its request budget is
        # Binance's x100 so no test waits on another's weight; tests/budget/ use real shapes.
        budget_limit_scale=100,
        # Tests fail authentication on purpose; test_limits tightens this on its own.
        auth_max_failures=10_000,
        # At most tests/pg.py CONNECTIONS at once on PostgreSQL, with the service processes some
        # tests start.
        db_pool_size=4,
        db_max_overflow=4,
        db_read_pool_size=1,
        # The venue fakes, the gateway fake and webhook receivers all listen on loopback.
        outbound_allow_private=True,
    )


@pytest.fixture(scope="session")
async def ctx(settings: Settings) -> AsyncIterator[AppContext]:
    context = AppContext.create(
        settings, KeyRing.parse(settings.encryption_keys.get_secret_value())
    )  # type: ignore[union-attr]
    yield context
    await context.aclose()


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit it. asyncio sets it only on sockets it creates itself (proto 6);
    # without it uvicorn's separate header and body writes wait out the client's delayed ACK:
    # 40 ms a request instead of under 1.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture(scope="session")
async def base_url(settings: Settings, ctx: AppContext) -> AsyncIterator[str]:
    """The real app behind real uvicorn on a loopback port, in the test's event loop."""
    app = create_app(settings, ctx=ctx)
    sock = _free_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    host, port = sock.getsockname()
    yield f"http://{host}:{port}"
    server.should_exit = True
    await task


async def _no_secrets_in_responses(response: httpx.Response) -> None:
    await response.aread()
    for secret in _leaks(response.text + str(response.headers)):
        secret_leaks.append(
            f"{response.request.method} {response.request.url.path}: ...{secret[-4:]}"
        )


async def _no_server_errors(response: httpx.Response) -> None:
    # No request anywhere in the suite may end in a 500: every failure is a clear 4xx (or a 502
    # naming the exchange that failed).
    if response.status_code == 500:
        await response.aread()
        raise AssertionError(
            f"500 from {response.request.method} {response.request.url}: {response.text}"
        )


@pytest.fixture(scope="session")
async def client(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    hooks = {"response": [_no_server_errors, _no_secrets_in_responses]}
    async with httpx.AsyncClient(base_url=base_url, timeout=30, event_hooks=hooks) as http:
        yield http


@pytest.fixture(scope="session")
def admin(client: httpx.AsyncClient) -> Actor:
    return Actor(client, {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}, role="admin", user_id=None)


@pytest.fixture
async def user(admin: Actor) -> Actor:
    return await admin.new_user()


@pytest.fixture
async def other_user(admin: Actor) -> Actor:
    return await admin.new_user()


@pytest.fixture(scope="session")
async def fake_binance_server() -> AsyncIterator[FakeBinance]:
    # Binance's documented example key pair: real-looking credentials, known to nobody's account.
    async with FakeBinance(api_key=EXAMPLE_API_KEY, api_secret=EXAMPLE_API_SECRET) as fake:
        yield fake


@pytest.fixture
async def fake_binance(
    fake_binance_server: FakeBinance, ctx: AppContext
) -> AsyncIterator[FakeBinance]:
    """A fresh-state fake; fails the test if anything called a path the fake does not serve."""
    fake = fake_binance_server
    await fake.come_up()
    fake.reset()
    # The session's service must not size on the previous test's prices of this same fake.
    ctx.adapters.forget_prices()
    yield fake
    unexpected = [(r.method, r.path) for r in fake.unexpected_requests]
    await fake.come_up()
    fake.reset()
    assert not unexpected, f"stray requests to the exchange: {unexpected}"
