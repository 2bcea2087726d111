"""The catalogue (qmt_mcp/calls.py) is the one place a call is declared: registration, routing,
auditing and retry safety read it, and a call missing from any of them, or a tool whose arguments
drift from its call's model, fails here."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Any

import pytest
from conftest import Session, make_worker

from qmt_mcp.calls import CATALOGUE, STATE_CHANGING
from qmt_mcp.clock import ManualClock
from qmt_mcp.config import Config
from qmt_mcp.domain.errors import ErrorCode, QmtError
from qmt_mcp.server import worker_client
from qmt_mcp.server.app import ANNOTATIONS
from qmt_mcp.server.tools import TOOLS
from qmt_mcp.worker import api

pytestmark = pytest.mark.anyio
TOOL_CALLS = {name for name, call in CATALOGUE.items() if call.tool is not None}


def _untitled(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _untitled(v) for k, v in node.items() if k != "title"}
    if isinstance(node, list):
        return [_untitled(v) for v in node]
    return node


def test_every_call_has_a_worker_handler_and_every_handler_a_call(clock: ManualClock) -> None:
    worker = make_worker(Config(), None, clock)
    assert set(worker.handlers()) == set(CATALOGUE)


def test_every_handler_takes_its_calls_model(clock: ManualClock) -> None:
    """The worker hands each handler the checked instance of its call's model; a call without one
    (the worker's own plumbing) gets the request's JSON object."""
    for name, handler in make_worker(Config(), None, clock).handlers().items():
        (param,) = inspect.signature(handler).parameters
        model = CATALOGUE[name].args
        assert typing.get_type_hints(handler)[param] == (dict[str, Any] if model is None else model), name


def test_every_tool_function_is_a_catalogue_tool_and_named_for_it() -> None:
    assert set(TOOLS) == TOOL_CALLS
    for name, fn in TOOLS.items():
        assert fn.__name__ == name and fn.__module__.startswith("qmt_mcp.server.tools."), name


def test_state_changing_calls_are_the_audited_ones_and_never_retried() -> None:
    assert api.AUDITED is STATE_CHANGING and worker_client.STATE_CHANGING is STATE_CHANGING
    assert {"place_order", "cancel_order", "reset_risk"} <= STATE_CHANGING


async def test_every_tool_is_registered_with_its_catalogue_title_description_and_annotations(
    session: Session,
) -> None:
    tools = {t.name: t for t in (await session.client.list_tools()).tools}
    assert set(tools) == TOOL_CALLS
    for name, tool in tools.items():
        meta = CATALOGUE[name].tool
        assert meta is not None
        assert (tool.title, tool.description) == (meta.title, meta.description), name
        assert tool.annotations == ANNOTATIONS[meta.kind], name


async def test_each_tools_arguments_are_its_calls_model(session: Session) -> None:
    """The tool's input schema and the model the worker checks with say the same, bound for bound."""
    for tool in (await session.client.list_tools()).tools:
        model = CATALOGUE[tool.name].args
        assert model is not None, tool.name
        schema = model.model_json_schema()
        public = {k: v for k, v in schema.get("properties", {}).items() if k not in model.SERVER_ONLY}
        assert _untitled(tool.input_schema.get("properties", {})) == _untitled(public), tool.name
        assert set(tool.input_schema.get("required", [])) == set(schema.get("required", [])), tool.name


async def test_the_worker_checks_every_call_against_its_model(session: Session) -> None:
    wc = session.server.deps.client
    for name, args, bad in [
        ("place_order", {"account": "sim", "code": "600000.SH", "side": "buy", "volume": 0, "price": 10}, "volume"),
        ("get_quote", {"codes": ["600000.SH"] * 51}, "codes"),
        ("get_klines", {"code": "600000.SH", "count": 5001}, "count"),
        ("reset_risk", {"account": "sim", "note": "x" * 201}, "note"),
        ("get_order_events", {"account": "sim", "wait_seconds": 61}, "wait_seconds"),
        ("cancel_order", {"account": "sim", "order_id": 1, "qty": 5}, "qty"),
    ]:
        with pytest.raises(QmtError) as refused:
            await wc.call(name, args)
        assert refused.value.code is ErrorCode.INVALID_ARGUMENT, name
        assert bad in refused.value.details["arguments"][0], (name, refused.value.details)
    assert session.counter.orders == {}


def test_adding_a_tool_touches_three_files() -> None:
    """calls.py (its Call), server/tools/<area>.py (its function), and the worker's handler: the
    README's contributor section says so; this keeps the first two where it says they are."""
    root = Path(__file__).resolve().parents[1] / "qmt_mcp"
    assert (root / "calls.py").exists() and (root / "server" / "tools").is_dir()
    assert not (root / "server" / "descriptions.py").exists()


def test_result_models_refuse_fields_they_do_not_list() -> None:
    """A worker answer with a field its schema does not name is a loud INTERNAL, never dropped
    silently: the wire forms and the schemas cannot drift apart unnoticed."""
    import inspect

    from pydantic import BaseModel

    from qmt_mcp.server import schemas

    models = [m for _, m in inspect.getmembers(schemas, inspect.isclass)
              if issubclass(m, BaseModel) and m.__module__ == schemas.__name__]
    closed = [m for m in models if m.model_config.get("extra") == "forbid"]
    open_ = {m.__name__ for m in models if m.model_config.get("extra") == "allow"}
    assert len(closed) + len(open_) == len(models), [m.__name__ for m in models if m not in closed]
    assert open_ <= {"_Open", "EventOut"}, open_  # events carry their type's own fields
