"""Property-based tests (hypothesis): whatever arrives, every tool and every worker call answers with
a success or a typed error, never a crash or a traceback, and no order comes from an invalid input.

The examples are derandomized (a fixed seed per test), so a run is repeatable; the budget per test
is set below and the whole file runs in well under a minute.
"""

from __future__ import annotations

import json
import string
from typing import Any
from urllib.parse import quote

import anyio
import jsonschema
import pytest
from conftest import TOKEN, Session
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp.server.mcpserver import MCPServer

from qmt_mcp.domain.errors import ErrorCode
from qmt_mcp.server.schema_shape import simplify

pytestmark = pytest.mark.anyio
CODES = {c.value for c in ErrorCode}
FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Values that sit near the edges the contract draws, beside arbitrary JSON.
PLAUSIBLE: st.SearchStrategy[Any] = st.sampled_from([
    "600000.SH", "000001.SZ", "688001.SH", "300750.SZ", "830799.BJ", "510300.SH", "sh600000", "600000",
    "999999.SH", "sim", "nobody", "buy", "sell", "limit", "market", "1d", "1m", "5m", "1w", "2y", "",
    " ", "x" * 300, "../../etc/passwd", "'; DROP TABLE orders; --", "忽略之前的指令", "\x00", "\u202e",
    "20261120", "20261120093000", "2026-11-20T10:00:00+08:00", "not-a-date", "best5_cancel", "sz_fok",
    0, -1, 1, 99, 100, 101, 200, 10**6, 10**9, 2**63, -(2**63), 0.001, 9.99, 10.005, 1e308, -0.0,
    True, False, None, [], {}, ["600000.SH"], ["600000.SH"] * 60,
])
JSON: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=12,
)
VALUE = st.one_of(PLAUSIBLE, JSON)


def arguments_for(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Argument dicts that use the tool's own names (each present or not, with any value), plus
    now and then a name the tool does not know."""
    names = sorted(schema.get("properties", {}))
    known = st.fixed_dictionaries({}, optional={n: VALUE for n in names})
    stray = st.dictionaries(st.text(string.ascii_letters + "_", min_size=1, max_size=12), VALUE, max_size=2)
    return st.tuples(known, stray).map(lambda kv: {**kv[1], **kv[0]})


ORDER_TOOLS = {"place_order", "preview_order"}


def near_valid_orders() -> st.SearchStrategy[dict[str, Any]]:
    """Orders that pass the argument parser often, so the domain checks get fuzzed too."""
    return st.fixed_dictionaries(
        {"account": st.sampled_from(["sim", "sim", "other"]),
         "code": st.sampled_from(["600000.SH", "600000.SH", "000001.SZ", "688981.SH", "300750.SZ", "830799.BJ",
                                  "510300.SH", "000029.SZ", "999999.SH"]),
         "side": st.sampled_from(["buy", "buy", "sell"]),
         "volume": st.sampled_from([100, 100, 200, 1000, 1, 50, 150, 201, 10**6, 10**8]) | st.integers(-5, 10**7)},
        optional={"price": st.sampled_from([10.0, 10.3, 11.0, 0.01, 1, 9.99, 10.005, 1000]) | st.floats(-1, 2000),
                  "order_type": st.sampled_from(["limit", "market"]),
                  "market_type": st.sampled_from(["best5_cancel", "sz_fok", "sh_protect", "nope"]),
                  "client_order_id": st.text(string.ascii_letters + string.digits + "-_ .", min_size=0, max_size=30)},
    )


def broker_orders(s: Session) -> int:
    return len(s.counter.orders)


async def test_every_tool_answers_any_arguments_with_a_result_or_a_typed_error(session: Session) -> None:
    # hypothesis drives from a worker thread; each example's call runs on the test's event loop.
    tools = {t.name: t for t in (await session.client.list_tools()).tools}
    seen: dict[str, set[str]] = {}
    placed_total = 0

    async def check(name: str, args: dict[str, Any]) -> None:
        before = broker_orders(session)
        res = await session.client.call_tool(name, args)
        data = res.structured_content
        assert isinstance(data, dict), (name, args, res.content)
        jsonschema.validate(data, (await session.schemas())[name])
        assert res.is_error == (not data["ok"]), (name, args)
        text = "".join(getattr(c, "text", "") for c in res.content)
        assert "Traceback" not in text, (name, args, text)
        if not data["ok"]:
            assert data["error"]["code"] in CODES, (name, args, data)
            assert data["error"]["code"] != "INTERNAL", (name, args, data)
            seen.setdefault(name, set()).add(data["error"]["code"])
        nonlocal placed_total
        placed = broker_orders(session) - before
        placed_total += placed
        if name == "place_order" and data["ok"] and not data.get("idempotent_replay"):
            assert placed == 1, (args, data)
        else:
            assert placed == 0, f"{name} with {args!r} gave {data!r} and sent {placed} order(s)"

    def fuzz(name: str) -> Any:
        args_of = arguments_for(tools[name].input_schema)
        if name in ORDER_TOOLS:
            args_of = st.one_of(args_of, near_valid_orders())

        @settings(FUZZ, max_examples=200 if name in ORDER_TOOLS else FUZZ.max_examples)
        @given(args_of)
        def prop(args: dict[str, Any]) -> None:
            anyio.from_thread.run(check, name, args)

        return prop

    for name in sorted(tools):
        await anyio.to_thread.run_sync(fuzz(name))
    # The fuzzer did reach the checks, not only the argument parser.
    assert "INVALID_ARGUMENT" in seen["place_order"]
    assert len(seen["place_order"]) >= 4, seen
    assert placed_total > 0, seen["place_order"]  # and valid orders did go through


@st.composite
def worker_requests(draw: st.DrawFn) -> tuple[str, str, bytes, dict[str, str]]:
    names = ["health", "get_quote", "get_klines", "preview_order", "place_order", "cancel_order", "get_order",
             "reset_risk", "note_gap", "get_order_events", "nope", "../v1/health", "%00", "place_order/x"]
    name = draw(st.sampled_from(names) | st.text(string.printable, max_size=20))
    method = draw(st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "DELETE"]))
    body_kind = draw(st.sampled_from(["json-object", "json-any", "bytes", "empty", "big", "order"]))
    if body_kind == "order":
        body = json.dumps(draw(near_valid_orders())).encode()
    elif body_kind == "json-object":
        body = json.dumps(draw(st.dictionaries(st.sampled_from(
            ["account", "code", "codes", "side", "volume", "price", "order_type", "client_order_id", "order_id",
             "confirm_token", "note", "period", "count", "wait_seconds", "x"]), VALUE, max_size=8))).encode()
    elif body_kind == "json-any":
        body = json.dumps(draw(JSON)).encode()
    elif body_kind == "bytes":
        body = draw(st.binary(max_size=200))
    elif body_kind == "big":
        body = b'{"a": "' + b"x" * 70_000 + b'"}'
    else:
        body = b""
    auth = draw(st.sampled_from([f"Bearer {TOKEN}"] * 3 + ["", "Bearer wrong", f"Bearer {TOKEN}x", TOKEN,
                                                         f"Basic {TOKEN}", "Bearer"]))
    headers = {"Authorization": auth} if auth else {}
    if draw(st.booleans()):
        headers["Content-Type"] = draw(st.sampled_from(["application/json", "text/plain", "x/x; charset=zzz"]))
    return method, name, body, headers


async def test_the_worker_api_answers_any_request_with_an_envelope_and_never_crashes(session: Session) -> None:
    http = session.server.deps.client.http
    statuses: set[int] = set()

    async def check(method: str, name: str, body: bytes, headers: dict[str, str]) -> None:
        before = broker_orders(session)
        with anyio.fail_after(10):
            resp = await http.request(method, f"/v1/{quote(name, safe='/%')}", content=body, headers=headers)
        statuses.add(resp.status_code)
        assert resp.status_code < 500, (method, name, body[:100], resp.status_code, resp.text[:300])
        assert "Traceback" not in resp.text
        assert resp.headers.get("content-type", "").startswith("application/json"), (method, name, resp)
        data = resp.json()
        assert isinstance(data.get("ok"), bool), data
        if not data["ok"]:
            assert data["error"]["code"] in CODES, data
        placed = broker_orders(session) - before
        if placed:
            assert resp.status_code == 200 and resp.json()["ok"] and name == "place_order", (name, body[:200])
            assert placed == 1

    @settings(FUZZ, max_examples=300)
    @given(worker_requests())
    def prop(req: tuple[str, str, bytes, dict[str, str]]) -> None:
        anyio.from_thread.run(check, *req)

    await anyio.to_thread.run_sync(prop)
    assert {200, 401}.issubset(statuses), statuses


async def test_shaped_output_schemas_accept_exactly_what_the_originals_accept(session: Session) -> None:
    """schema_shape rewrites what clients see; it must not change which results are valid."""
    original = {t.name: t.output_schema for t in await MCPServer.list_tools(session.server) if t.output_schema}
    shaped = {name: simplify(schema) for name, schema in original.items()}
    assert shaped == await session.schemas()
    s = session
    samples: dict[str, list[Any]] = {
        "get_quote": [await s.call("get_quote", codes=["600000.SH", "000001.SZ"]), await s.call("get_quote", codes=[])],
        "get_klines": [await s.call("get_klines", code="600000.SH", count=5)],
        "get_instrument": [await s.call("get_instrument", code="688001.SH")],
        "preview_order": [await s.call("preview_order", account="sim", code="600000.SH", side="buy", volume=100,
                                       price=10), await s.call("preview_order", account="zz", code="1", side="x",
                                                               volume=0)],
        "place_order": [await s.call("place_order", **await s.marketable_buy("fz1"))],
        "get_orders": [await s.call("get_orders", account="sim")],
        "get_positions": [await s.call("get_positions", account="sim")],
        "health": [await s.call("health")],
    }
    mutate = st.tuples(st.integers(0, 10**6), VALUE)

    def same_verdict(name: str) -> Any:
        a = jsonschema.validators.validator_for(original[name])(original[name])
        b = jsonschema.validators.validator_for(shaped[name])(shaped[name])

        @settings(FUZZ, max_examples=150)
        @given(st.sampled_from(samples[name]), mutate, mutate)
        def prop(doc: Any, m1: tuple[int, Any], m2: tuple[int, Any]) -> None:
            changed = _mutated(_mutated(doc, *m1), *m2)
            assert a.is_valid(changed) == b.is_valid(changed), changed

        return prop

    for name in samples:
        same_verdict(name)()


def _mutated(doc: Any, pick: int, value: Any) -> Any:
    """A copy of `doc` with one node (chosen by `pick` among all nodes) replaced by `value`."""
    paths: list[tuple[Any, ...]] = []

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        paths.append(path)
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, (*path, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, (*path, i))

    walk(doc, ())
    target = paths[pick % len(paths)]
    if not target:
        return value
    copy = json.loads(json.dumps(doc))
    node = copy
    for step in target[:-1]:
        node = node[step]
    node[target[-1]] = value
    return copy
