"""API fuzzing: schemathesis generates requests from the live OpenAPI schema for every operation,
as an admin key and as a user key, and checks every answer.

- No 5xx. The one exception is `ALLOWED_5XX`: a 502 where the exchange is unreachable, which is
  the documented answer. Every exchange and gateway the fuzzer reaches is a refused loopback port.
- The answer conforms to the documented responses: status code, content type, headers and body
  schema (each event, for an event stream), by schemathesis' own checks, with no exclusions. That
  includes the errors, which the routes document as problem+json
  (`test_problem_responses_are_documented`).
- Bad input gets a clear error in `application/problem+json` (`type, title, status, detail,
  code`, plus `errors` for a `validation_error`). A 2xx never accepts schemathesis' negative
  (schema-violating) data.
- For a user key, another owner's row is a 404, never a 403 or a 200. Admin-only operations are a
  403, and no answer carries a row with another `user_id`.
- Secrets never come back: not the API keys, not the seeded or generated exchange credentials, and
  no field named like a credential.

The fuzzer runs its own copy of the app, on its own database, with the suite's settings and
built the way the suite builds `base_url`. The reason: an admin key sees every row. Random ids on
DELETE and PATCH would revoke and delete other tests' rows in the shared session database,
including the bootstrap admin key.

The run is bounded and reproducible. Each operation and role gets `FUZZ_EXAMPLES` examples
(default 10), with valid and invalid data mixed. Each has a fixed seed, so a run sends the same
requests as the last run of the same test files. (Hypothesis also draws constants from the
project's loaded modules, so running this file alone can differ from a whole-suite run.) There is
no deadline, no example database, and nothing is written into the checkout. A failure prints the
request as a curl command. `FUZZ_EXAMPLES=100 FUZZ_SEED=1 pytest tests/reliability/test_fuzz.py`
digs deeper, with other requests.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import secrets
import socket
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, seed, settings, strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from execution_service.app import create_app
from execution_service.context import AppContext
from execution_service.crypto import KeyRing
from execution_service.settings import Settings
from tests.conftest import BOOTSTRAP_KEY, _free_socket, fresh_database
from tests.factories import Actor, paper_setup

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
# Every operation and role has a fixed seed, so every run sends the same requests. Another
# FUZZ_SEED sends others.
FUZZ_SEED = int(os.environ.get("FUZZ_SEED", "0"))
# An event stream never ends. Its answer is what arrives within STREAM_SECONDS, and it gets fewer
# examples, so each one costs that long at most.
STREAM_EXAMPLES = min(FUZZ_EXAMPLES, 5)
STREAM_SECONDS = 0.5
SSE = "text/event-stream"
# Path parameters naming what one signal leaves behind.
TRADE_ROWS = ("signal_id", "log_id", "position_id")
PROBLEM = "application/problem+json"
ROLES = ("admin", "user")
ROW_ID_MAX = 2**31 - 1

# 5xx answers that are correct for an operation. Only the 502 of an unreachable exchange is
# allowed, and only where the fuzzer can cause one. GET …/balance on the seeded ccxt and mtapi
# connections (dead port) answers 502 `balance_unavailable`, as documented in the README.
# POST /logs/{id}/cancel and POST /positions/{id}/close also answer 502 when the exchange is
# down, but only for orders and positions on a real exchange. Those need an active exchange
# connection, which a dead port never passes the activation check for, so here they would be a
# bug.
ALLOWED_5XX: dict[tuple[str, int], str] = {
    ("GET /api/v1/connections/{connection_id}/balance", 502): "exchange unreachable",
}

# Given here, so no schemathesis.toml is picked up. Invalid data may be refused with any of
# schemathesis' default statuses, or with 413: a negated `maxItems` can make a body larger than
# the body limit.
NEGATIVE_DATA_REFUSED = "400 401 403 404 405 406 409 413 415 422 428 429 5xx"
SCHEMATHESIS = schemathesis.Config.from_dict(
    {"checks": {"negative_data_rejection": {"expected-statuses": NEGATIVE_DATA_REFUSED.split(" ")}}}
)

# Admin-only operations: a user key is refused with a 403 (its role), before any row is read.
ADMIN_ONLY_PREFIX = "/api/v1/api-keys"

# Field names that never appear in an answer: credential material and key hashes.
SECRET_FIELDS = frozenset(
    {"credentials", "credentials_encrypted", "api_secret", "password", "passphrase", "key_hash"}
)
# Secrets shown once, in the answer that creates them and nowhere else.
SHOWN_ONCE = {"key": "POST /api/v1/api-keys", "secret": "POST /api/v1/webhooks"}
# Request fields that carry secrets. Their values never come back in any answer.
SECRET_INPUTS = frozenset({"credentials", "api_key", "api_secret", "password", "passphrase"})


def _openapi_paths() -> dict[str, Any]:
    """The app's OpenAPI paths, built without serving anything (at collection time)."""
    app = create_app(
        Settings(env="test", database_url="sqlite+aiosqlite://", workers_enabled=False)
    )
    return app.openapi()["paths"]  # type: ignore[no-any-return]


OPERATIONS = [
    f"{method.upper()} {path}" for path, ops in _openapi_paths().items() for method in ops
]


# --- the target: the app on its own database ------------------------------------------------


@dataclass
class Target:
    base_url: str
    schema: Any
    bootstrap: Actor
    actors: dict[str, Actor]
    # Keys a DELETE /api-keys/{key_id} never revokes: the bootstrap key and the fuzzer's own.
    protected_key_ids: set[int]
    dead_url: str
    # Strings that never appear in an answer: API keys and the seeded exchange credentials.
    secrets: list[str]


def _key_of(actor: Actor) -> str:
    return actor.headers["Authorization"].removeprefix("Bearer ")


def _auth(actor: Actor) -> dict[str, str]:
    # Both ways of sending the key, both fixed. Schemathesis then does not generate either header.
    # A mangled key would only be replaced on sending, and would turn negative data into valid data.
    return {**actor.headers, "X-API-Key": _key_of(actor)}


@pytest.fixture(scope="module", autouse=True)
def hypothesis_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Hypothesis keeps caches (constants found in the source, unicode tables) in `.hypothesis/`
    under the working directory, even with no example database. They go to a temporary
    directory instead, so the run writes nothing into the checkout."""
    set_hypothesis_home_dir(tmp_path_factory.mktemp("hypothesis"))
    yield
    set_hypothesis_home_dir(None)


@pytest.fixture(scope="module")
def dead_port() -> Iterator[int]:
    """A loopback port that is bound but never listens. Every connection to it is refused at once,
    and nothing else can take it while the fuzzer runs."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture(scope="module")
async def target(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory, dead_port: int
) -> AsyncIterator[Target]:
    url = await fresh_database(tmp_path_factory.mktemp("fuzz"), "exec_fuzz_test")
    fuzz_settings = settings.model_copy(update={"database_url": url})
    assert fuzz_settings.encryption_keys is not None
    context = AppContext.create(
        fuzz_settings, KeyRing.parse(fuzz_settings.encryption_keys.get_secret_value())
    )
    app = create_app(fuzz_settings, ctx=context)
    sock = _free_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    host, port = sock.getsockname()
    base_url = f"http://{host}:{port}"
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            bootstrap = Actor(http, {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}, "admin", None)
            # The fuzzer's admin has its own key, not the bootstrap key.
            actors = {"admin": await bootstrap.new_key("admin"), "user": await bootstrap.new_user()}
            protected = {a.key_id for a in actors.values() if a.key_id is not None}
            protected.add((await bootstrap.ok("GET", "/api/v1/me"))["key_id"])
            # The live schema, as the served app publishes it.
            schema = await asyncio.to_thread(
                schemathesis.openapi.from_url, f"{base_url}/openapi.json", config=SCHEMATHESIS
            )
            yield Target(
                base_url=base_url,
                schema=schema,
                bootstrap=bootstrap,
                actors=actors,
                protected_key_ids=protected,
                dead_url=f"http://127.0.0.1:{dead_port}",
                secrets=[BOOTSTRAP_KEY, *(_key_of(a) for a in actors.values())],
            )
    finally:
        server.should_exit = True
        await task
        await context.aclose()


# --- rows to aim at ------------------------------------------------------------------------


async def _seed(
    owner: Actor, target: Target, needs: frozenset[str] | None = None
) -> dict[str, list[int]]:
    """One owner's rows, listed under the path parameter that names them: an active paper account
    with an open position, plus an exchange (ccxt), a broker gateway (mtapi) and an exchange price
    source, all three at the dead port, and a webhook. `needs` (the path parameters of one
    operation) limits the rows to what that operation can aim at. None means every kind."""

    def wanted(*names: str) -> bool:
        return needs is None or not needs.isdisjoint(names)

    rows: dict[str, list[int]] = {}
    if wanted("preset_id", "data_connection_id", "connection_id", *TRADE_ROWS):
        acct = await paper_setup(
            owner, position_size_mode="fixed_quantity", position_size_value="0.01"
        )
        rows["preset_id"] = [acct.preset["id"]]
        rows["data_connection_id"] = [acct.data_connection["id"]]
        rows["connection_id"] = [acct.conn_id]
        if wanted(*TRADE_ROWS):
            signal = await acct.signal(sl_price="90", tp_price="120")
            execution = signal["executions"][0]
            rows["signal_id"] = [signal["id"]]
            rows["log_id"] = [execution["execution_log_id"]]
            rows["position_id"] = [execution["position_id"]]
        if wanted("data_connection_id", "connection_id"):
            rows["connection_id"] += await _exchange_rows(owner, target, acct.preset["id"])
            prices = await owner.data_connection(
                type="ccxt", exchange="binance", api_base_url=target.dead_url
            )
            rows["data_connection_id"].append(prices["id"])
    if wanted("webhook_id"):
        webhook = await owner.ok("POST", "/api/v1/webhooks", 201, json={"url": target.dead_url})
        target.secrets.append(webhook["secret"])
        rows["webhook_id"] = [webhook["id"]]
    if needs is not None and "key_id" in needs:
        # DELETE /api-keys/{key_id} revokes these spare keys, never a key the fuzzer uses.
        rows["key_id"] = [(await target.bootstrap.new_user()).key_id or 0 for _ in range(2)]
    return rows


async def _exchange_rows(owner: Actor, target: Target, preset_id: int) -> list[int]:
    """A ccxt and an mtapi connection at the dead port, with credentials that must never show."""
    ccxt_creds = {"api_key": secrets.token_hex(16), "api_secret": secrets.token_hex(24)}
    mtapi_creds = {"user": "5012345", "password": secrets.token_hex(12), "host": "broker.invalid"}
    target.secrets += [ccxt_creds["api_key"], ccxt_creds["api_secret"], mtapi_creds["password"]]
    common = {"api_base_url": target.dead_url, "preset_id": preset_id}
    bodies = [
        {"name": "exchange", "adapter": "ccxt", "exchange": "binance", "credentials": ccxt_creds},
        {"name": "broker", "type": "fx", "adapter": "mtapi", "credentials": mtapi_creds},
    ]
    return [
        (await owner.ok("POST", "/api/v1/connections", 201, json={**body, **common}))["id"]
        for body in bodies
    ]


@dataclass
class Pools:
    """Ids that exist, for path parameters: the actor's own rows and another owner's. Ids in
    `protected` are never sent; the fuzzer aims at one of its own rows instead."""

    own: dict[str, list[int]]
    foreign: dict[str, list[int]]
    protected: dict[str, set[int]] = field(default_factory=dict)


@pytest.fixture(scope="module")
async def pools(target: Target) -> dict[str, Pools]:
    """Rows for each role to read, seeded once for the module: its own and another owner's."""
    result: dict[str, Pools] = {}
    for role in ROLES:
        mine = await _seed(target.actors[role], target)
        theirs = await _seed(await target.bootstrap.new_user(), target)
        if role == "admin":  # an admin sees every row, so no row is foreign to it
            own = {name: mine[name] + theirs[name] for name in mine}
            result[role] = Pools(own=own, foreign={})
        else:
            result[role] = Pools(own=mine, foreign=theirs)
    return result


def _changes_rows(label: str) -> bool:
    """Whether the operation may change or remove the row its path names."""
    method, path = label.split(" ", 1)
    return method != "GET" and "{" in path


def _path_parameters(label: str) -> frozenset[str]:
    return frozenset(re.findall(r"{(\w+)}", label))


async def _rows_to_change(target: Target, shared: dict[str, Pools], role: str, label: str) -> Pools:
    """Rows for one operation that changes rows, seeded fresh for it. The module's rows stay as
    they were for every other operation, so no result depends on which operations ran before:
    their ids are protected. For a user key, another owner's rows (the shared ones) stay in
    play, because the operation must answer 404 for them and leave them alone."""
    owner = target.actors["user"] if role == "user" else await target.bootstrap.new_user()
    own = await _seed(owner, target, _path_parameters(label))
    foreign = shared[role].foreign
    protected: dict[str, set[int]] = {"key_id": set(target.protected_key_ids)}
    for pool in shared.values():
        for name, ids in [*pool.own.items(), *pool.foreign.items()]:
            protected.setdefault(name, set()).update(set(ids) - set(foreign.get(name, [])))
    return Pools(own=own, foreign=foreign, protected=protected)


# --- checks ----------------------------------------------------------------------------------


def _media_type(response: Any) -> str:
    values = response.headers.get("content-type") or [""]
    return str(values[0]).split(";")[0].strip().lower()


def _documents(response: Any) -> list[Any]:
    """The JSON documents of an answer: its body, or the `data:` of each server-sent event."""
    media_type = _media_type(response)
    if media_type == SSE:
        texts = [
            line[len("data:") :].strip()
            for line in response.content.decode("utf-8", "replace").splitlines()
            if line.startswith("data:")
        ]
    elif media_type in ("application/json", PROBLEM) and response.content:
        texts = [response.content]
    else:
        return []
    documents = []
    for text in texts:
        try:
            documents.append(json.loads(text))
        except ValueError:
            continue
    return documents


def _json(response: Any) -> Any:
    documents = _documents(response) if _media_type(response) != SSE else []
    return documents[0] if documents else None


def _problem_errors(response: Any) -> list[str]:
    """What is wrong with an error answer, which must be clear problem details."""
    status = response.status_code
    if _media_type(response) != PROBLEM:
        return [f"a {status} that is not {PROBLEM} but {_media_type(response)!r}"]
    body = _json(response)
    if not isinstance(body, dict):
        return [f"a {status} whose body is not a JSON object"]
    errors = [
        f"problem details without a string `{name}`"
        for name in ("type", "title", "detail", "code")
        if not isinstance(body.get(name), str) or not body[name]
    ]
    if body.get("status") != status:
        errors.append(f"problem details `status` {body.get('status')!r}, not {status}")
    if body.get("code") == "validation_error" and not isinstance(body.get("errors"), list):
        # README: "Validation failures are 422 with `errors: [{loc, msg}]`".
        errors.append("a validation_error without `errors: [{loc, msg}]`")
    return errors


def _walk(value: Any) -> Iterator[tuple[str | None, Any]]:
    """Every (key, value) pair of a JSON document, depth first. List items have the key None."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield None, item
            yield from _walk(item)


def _strings(value: Any, secret: bool = False) -> Iterator[tuple[bool, str]]:
    """Every string in a request body, with whether it sits under a credential field."""
    if isinstance(value, str):
        yield secret, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, secret or key in SECRET_INPUTS)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, secret)


def _secret_inputs(body: Any) -> set[str]:
    """The credential values a request body carries. Short values are left out because they
    match by chance. So is any value also sent in an ordinary field that the app echoes on
    purpose, since hypothesis reuses strings across fields."""
    strings = list(_strings(body))
    plain = {value for secret, value in strings if not secret}
    return {value for secret, value in strings if secret and len(value) >= 8} - plain


def _secret_errors(target: Target, case: Any, response: Any, label: str) -> list[str]:
    text = response.content.decode("utf-8", "replace")
    errors = [f"the secret {s[:4]}… is in the answer" for s in target.secrets if s in text]
    errors += [
        f"the credential {s[:4]}… sent in the request is in the answer"
        for s in _secret_inputs(case.body)
        if s in text
    ]
    for key, _ in _walk(_documents(response)):
        if key in SECRET_FIELDS:
            errors.append(f"a `{key}` field in the answer")
        if key in SHOWN_ONCE and label != SHOWN_ONCE[key]:
            errors.append(f"a `{key}` field outside the answer to {SHOWN_ONCE[key]}")
    return errors


def _ownership_errors(
    role: str, user_id: int | None, pools: Pools, case: Any, response: Any, label: str
) -> list[str]:
    if role != "user":
        return []
    errors: list[str] = []
    status = response.status_code
    admin_only = label.split(" ", 1)[1].startswith(ADMIN_ONLY_PREFIX)
    if admin_only and status not in (403, 400, 422):
        errors.append(f"a user key got {status} from an admin-only operation, not 403")
    foreign = [
        (name, value)
        for name, value in (case.path_parameters or {}).items()
        if value in pools.foreign.get(name, [])
    ]
    # A 400 or 422 comes from parsing the request, before any row is read, and a 413 from the
    # body limit, before even that. It is the same for every id, so it tells nothing about the
    # row.
    if foreign and not admin_only and status not in (400, 404, 413, 422):
        errors.append(f"another owner's row {foreign} answered {status}, not 404")
    if 200 <= status < 300:
        for key, value in _walk(_documents(response)):
            if key == "user_id" and value is not None and value != user_id:
                errors.append(f"a row of user {value} in an answer to user {user_id}")
                break
    return errors


def _verify(
    target: Target, role: str, pools: Pools, case: Any, response: Any, label: str
) -> list[str]:
    status = response.status_code
    errors: list[str] = []
    if status >= 500 and (label, status) not in ALLOWED_5XX:
        errors.append(f"server error {status}")
    if status >= 400:
        errors += _problem_errors(response)
    checks = [
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        negative_data_rejection,
    ]
    try:
        case.validate_response(response, checks=checks)
    except schemathesis.errors.FailureGroup as failures:
        errors += [str(failure).strip() for failure in failures.exceptions]
    errors += _secret_errors(target, case, response, label)
    errors += _ownership_errors(role, target.actors[role].user_id, pools, case, response, label)
    return errors


# --- the fuzzer ------------------------------------------------------------------------------


def _strategy(operation: Any, headers: dict[str, str]) -> st.SearchStrategy[Any]:
    """Valid and invalid requests for one operation, half and half. (An operation with nothing
    to negate, like GET /api/v1/me, rejects every negative draw and gets valid requests only.)"""
    return st.one_of(
        operation.as_strategy(generation_mode=mode, headers=headers)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    )


def _aim(case: Any, data: st.DataObject, pools: Pools, target: Target, label: str) -> None:
    """Point generated ids at rows that exist, the caller's own and another owner's, and point
    exchanges at the dead port."""
    for name, value in list((case.path_parameters or {}).items()):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= ROW_ID_MAX:
            continue  # negative data (a string, a float, out of range): it stays, to be refused
        choices = [kind for kind in ("own", "foreign") if getattr(pools, kind).get(name)]
        kind = data.draw(st.sampled_from([*choices, "generated"]), label=f"{name} aims at")
        if kind != "generated":
            case.path_parameters[name] = data.draw(st.sampled_from(getattr(pools, kind)[name]))
        if name in pools.own and case.path_parameters[name] in pools.protected.get(name, ()):
            # A shared row, or a key the fuzzer (or the bootstrap admin) uses: revoking that key
            # would turn every later request into a 401. Aim at a row of this operation's own.
            case.path_parameters[name] = pools.own[name][0]
    query = case.query
    # An event stream's cursor: from 0, the stream replays every event the caller may see, which
    # are the ones worth checking (schema, owner, secrets). From anywhere else it is empty.
    # `Last-Event-ID` would take precedence over `?after=`.
    if isinstance(query, dict) and type(query.get("after")) is int and query["after"] >= 0:
        query["after"] = 0
        for name in [h for h in case.headers or {} if h.lower() == "last-event-id"]:
            del case.headers[name]
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("credentials"), dict):
        # conftest remembers every stored credential of 8+ characters and fails the session if
        # one shows up in any later response or log line. A generated credential like "00000000",
        # or one that hypothesis also used as a name, would show up there by chance. So these
        # become distinctive hex strings of the same length.
        creds = body["credentials"]
        for name, value in list(creds.items()):
            if isinstance(value, str) and len(value) >= 8:
                digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
                creds[name] = (digest * (len(value) // len(digest) + 1))[: len(value)]
    if isinstance(body, dict) and (
        {"api_base_url", "exchange"} & body.keys()
        or body.get("adapter") in ("ccxt", "mtapi")
        or body.get("type") == "ccxt"
    ):
        # The network guard refuses anything off loopback, and an unreachable exchange is a
        # path worth testing. So every exchange or gateway the fuzzer creates or edits points
        # at the dead port.
        body["api_base_url"] = target.dead_url
    if label == "POST /api/v1/webhooks" and isinstance(body, dict) and "url" in body:
        # Likewise for webhook receivers, should a delivery ever be attempted.
        body["url"] = target.dead_url


def _fuzz(target: Target, role: str, label: str, pools: Pools) -> None:
    method, path = label.split(" ", 1)
    operation = target.schema[path][method]
    headers = _auth(target.actors[role])
    stream = any(
        SSE in answer.get("content", {})
        for answer in operation.definition.raw.get("responses", {}).values()
    )

    @settings(
        max_examples=STREAM_EXAMPLES if stream else FUZZ_EXAMPLES,
        deadline=None,
        derandomize=False,  # `seed` below instead: it does not change when this code does
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @seed(zlib.crc32(f"{role} {label}".encode()) ^ FUZZ_SEED)
    @given(case=_strategy(operation, headers), data=st.data())
    def run(case: Any, data: st.DataObject) -> None:
        _aim(case, data, pools, target, label)
        # Reading `meta` makes schemathesis re-check what `_aim` changed. A negative case that
        # became valid (say, an invalid `api_base_url` replaced by the dead port) then counts as
        # positive, and its 2xx is not reported as accepted bad input.
        assert case.meta is not None
        timeout = STREAM_SECONDS if stream else 30
        response = case.call(base_url=target.base_url, headers=headers, timeout=timeout)
        errors = _verify(target, role, pools, case, response, label)
        if errors:
            shown = response.content[:1000].decode("utf-8", "replace")
            # curl shows raw bytes lossily; their repr is exact.
            raw = f"\nraw body: {case.body!r:.300}" if isinstance(case.body, bytes) else ""
            raise AssertionError(
                f"{label} as {role}:\n- " + "\n- ".join(errors) + "\n"
                f"request: {case.as_curl_command(headers=headers)}{raw}\n"
                f"answer: {response.status_code} {_media_type(response)} {shown}"
            )

    run()


@pytest.mark.parametrize("label", OPERATIONS, ids=lambda label: label.replace(" ", ":"))
@pytest.mark.parametrize("role", ROLES)
async def test_fuzz(target: Target, pools: dict[str, Pools], role: str, label: str) -> None:
    if _changes_rows(label):
        rows = await _rows_to_change(target, pools, role, label)
    else:
        rows = pools[role]
    # The fuzzer's requests block (they use requests), so they run in a thread while the app
    # answers in this event loop.
    await asyncio.to_thread(_fuzz, target, role, label, rows)


def test_problem_responses_are_documented() -> None:
    """Every error the API answers is problem+json, and the schema says so. Left alone, FastAPI
    documents only the success response and a 422 `application/json` `HTTPValidationError`, a body
    the app never sends, and the fuzzer's conformance checks would fail on every error answer.
    Each /api/v1 operation documents 401 and 422 as `application/problem+json`, 404 where the path
    names a row, and 403 where only an admin may call it. (The fuzzer finds any other status an
    operation answers but does not document.)"""
    gaps: list[str] = []
    for path, operations in _openapi_paths().items():
        if not path.startswith("/api/v1"):
            continue
        for method, spec in operations.items():
            expected = {"401", "422"}
            if "{" in path:
                expected.add("404")
            if path.startswith(ADMIN_ONLY_PREFIX):
                expected.add("403")
            responses = spec.get("responses", {})
            missing = sorted(
                s for s in expected if PROBLEM not in responses.get(s, {}).get("content", {})
            )
            fastapi_422 = "application/json" in responses.get("422", {}).get("content", {})
            if missing or fastapi_422:
                note = (
                    "; 422 documented as application/json HTTPValidationError"
                    if fastapi_422
                    else ""
                )
                gaps.append(f"{method.upper()} {path}: no problem+json {', '.join(missing)}{note}")
    assert not gaps, "error responses missing from the OpenAPI schema:\n" + "\n".join(gaps)
