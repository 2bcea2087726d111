"""xtquant's numbers live in one file, qmt_mcp/backends/xtq/constants.py: they are the wheel's own
xtconstant values, the status and price-type tables map both ways and cover the domain's enums, and no
module outside backends/xtq holds them (the domain and the simulator speak the domain's enums)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import qmt_mcp
from qmt_mcp.backends.xtq import constants as xtc
from qmt_mcp.domain.codes import Exchange
from qmt_mcp.domain.orders import MARKET_TYPES, MarketType, OrderType
from qmt_mcp.domain.status import OrderStatus

ROOT = Path(qmt_mcp.__file__).parent
XTQ = ROOT / "backends" / "xtq"
STATUS_CODES = frozenset(xtc.XT_STATUS)
PRICE_TYPES = frozenset({xtc.FIX_PRICE, *xtc.MARKET_PRICE_TYPES.values()})
SAMPLE = {Exchange.SH: "600000.SH", Exchange.SZ: "000001.SZ", Exchange.BJ: "830799.BJ"}


def test_status_table_maps_every_xtquant_code_both_ways() -> None:
    assert set(xtc.XT_STATUS) == {48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 255}
    for code, status in xtc.XT_STATUS.items():
        assert xtc.STATUS_XT[status] == code
    assert xtc.from_xt(99) is OrderStatus.UNKNOWN
    # Only the local statuses have no code: no broker reports them.
    assert set(OrderStatus) - set(xtc.STATUS_XT) == {OrderStatus.PENDING_SUBMIT, OrderStatus.INDETERMINATE,
                                                     OrderStatus.PENDING_APPROVAL, OrderStatus.DENIED}


def test_every_market_order_an_exchange_has_has_one_price_type_that_reads_back() -> None:
    assert set(xtc.MARKET_PRICE_TYPES) == MARKET_TYPES
    for (exchange, market_type), code in xtc.MARKET_PRICE_TYPES.items():
        assert xtc.xt_price_type(OrderType.MARKET, market_type, SAMPLE[exchange]) == code
        assert (xtc.order_type_of(code), xtc.market_type_of(code)) == (OrderType.MARKET, market_type)
    assert xtc.xt_price_type(OrderType.LIMIT, None, "000001.SZ") == xtc.FIX_PRICE == 11
    assert xtc.xt_price_type(OrderType.MARKET, None, "000001.SZ") == 47   # the parser's default, best-5 cancel
    assert (xtc.order_type_of(xtc.FIX_PRICE), xtc.market_type_of(xtc.FIX_PRICE)) == (OrderType.LIMIT, None)
    # A type QMT offers by hand and we never send: a market order of no type we name.
    assert (xtc.order_type_of(xtc.LATEST_PRICE), xtc.market_type_of(xtc.LATEST_PRICE)) == (OrderType.MARKET, None)


def _xtconstant() -> ModuleType:
    """The wheel's xtconstant.py, loaded by its path: importing it as `xtquant.xtconstant` would run
    xtquant/__init__.py, which asks the package index for a newer version."""
    spec = importlib.util.find_spec("xtquant")
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "xtconstant.py"
    loaded = importlib.util.spec_from_file_location("_wheel_xtconstant", path)
    assert loaded is not None and loaded.loader is not None
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    return module


def test_the_numbers_are_the_installed_wheels_own() -> None:
    wheel = _xtconstant()
    ours = {name: value for name, value in vars(xtc).items() if name.isupper() and type(value) is int}
    assert {name: getattr(wheel, name) for name in ours if hasattr(wheel, name)} == {
        name: value for name, value in ours.items() if hasattr(wheel, name)}
    # The rest have no xtconstant name: xtdata's documented codes, its lot, and the calls' return codes.
    assert {name for name in ours if not hasattr(wheel, name)} == {
        "OK", "FAILED", "LOT", "STOCK_PRE_OPEN", "STOCK_CALL_AUCTION", "STOCK_TRADING", "STOCK_BREAK",
        "STOCK_CLOSED", "STOCK_SUSPENDED", "STOCK_CLOSING_AUCTION"}


# ----- nothing outside backends/xtq holds them


def _modules_outside_xtq() -> Iterator[ModuleType]:
    for info in pkgutil.walk_packages(qmt_mcp.__path__, "qmt_mcp."):
        if info.name.startswith("qmt_mcp.backends.xtq") or info.name.endswith("__main__"):
            continue
        yield importlib.import_module(info.name)


def _vendor_pair(key: Any, value: Any) -> bool:
    """A mapping item that says what xtquant's number for a domain value is, or the reverse."""
    def named(x: Any) -> bool:
        members = x if isinstance(x, tuple) else (x,)
        return any(isinstance(m, OrderStatus | OrderType | MarketType) for m in members)

    def number(x: Any) -> bool:
        return type(x) is int and x in STATUS_CODES | PRICE_TYPES
    return (named(key) and number(value)) or (number(key) and named(value))


def _holds_numbers(name: str, value: Any) -> bool:
    """A status or price-type table, or a number under its xtconstant name (FIX_PRICE = 11) or under a
    status's name (UNREPORTED = 48)."""
    if isinstance(value, Mapping):
        return any(_vendor_pair(k, v) for k, v in value.items())
    if type(value) is not int or value not in STATUS_CODES | PRICE_TYPES | set(xtc.ORDER_TYPES.values()):
        return False
    if name.isupper() and value == getattr(xtc, name, None):
        return True
    return name in OrderStatus.__members__ and value == xtc.STATUS_XT.get(OrderStatus[name])


def test_no_module_outside_backends_xtq_holds_a_table_of_xtquant_numbers() -> None:
    """Every module-level value of every other module, imported ones included."""
    found = [f"{module.__name__}.{name}" for module in _modules_outside_xtq()
             for name, value in vars(module).items() if _holds_numbers(name, value)]
    assert found == []


def _source_outside_xtq() -> Iterator[tuple[Path, ast.AST]]:
    for path in sorted(ROOT.rglob("*.py")):
        if XTQ not in path.parents:
            yield path, ast.parse(path.read_text(encoding="utf-8"))


def _ints(nodes: list[ast.expr | None]) -> set[int]:
    return {n.value for n in nodes if isinstance(n, ast.Constant) and type(n.value) is int}


def _reads_vendor_field(node: ast.expr) -> bool:
    name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""
    return name.endswith(("price_type", "status"))


def _spelled(tree: ast.AST) -> list[tuple[int, str]]:
    """Where a module's source spells xtquant's numbers as vocabulary: a table (`{48: ...}`, `{...: 42}`), a test
    of a status or price type against one (`o.price_type == 11`, `o.status in (50, 55)`), or numbers
    bound to status names (`UNREPORTED, REPORTED = 48, 50`)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict) and len(_ints([*node.keys, *node.values]) & (STATUS_CODES | PRICE_TYPES)) >= 2:
            found.append((node.lineno, "a table of status codes or price types"))
        elif isinstance(node, ast.Compare) and _reads_vendor_field(node.left):
            others: list[ast.expr | None] = []
            for right in node.comparators:
                others += right.elts if isinstance(right, ast.Tuple | ast.List | ast.Set) else [right]
            if _ints(others) & (STATUS_CODES | PRICE_TYPES):
                found.append((node.lineno, "a status or price type compared with a number"))
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple):
            names = {t.id for target in node.targets if isinstance(target, ast.Tuple)
                     for t in target.elts if isinstance(t, ast.Name)}
            if names & set(OrderStatus.__members__) and _ints(list(node.value.elts)) & STATUS_CODES:
                found.append((node.lineno, "status codes under status names"))
    return found


def test_no_source_outside_backends_xtq_spells_xtquant_numbers() -> None:
    """What the import check cannot see: tables and tests inside functions and classes."""
    found = [f"{path.relative_to(ROOT.parent)}:{line} {what}"
             for path, tree in _source_outside_xtq() for line, what in _spelled(tree)]
    assert found == []


def test_the_source_check_sees_the_forms_the_numbers_used_to_take() -> None:
    old = ast.parse("XT = {48: S.UNREPORTED, 50: S.REPORTED}\nif o.price_type == 11:\n    pass\n"
                    "ok = o.status in (48, 50, 55)\nUNREPORTED, REPORTED = 48, 50\n")
    assert sorted(line for line, _ in _spelled(old)) == [1, 2, 4, 5]
    assert _vendor_pair(48, OrderStatus.UNREPORTED) and _vendor_pair((Exchange.SH, MarketType.IOC), 46)
    assert not _vendor_pair("48", OrderStatus.UNREPORTED) and not _vendor_pair(Exchange.SH, 0)
    assert _holds_numbers("FIX_PRICE", 11) and _holds_numbers("UNREPORTED", 48)
    assert not _holds_numbers("LOT_SIZE", 11) and not _holds_numbers("UNREPORTED", "unreported")
