"""The module boundaries, read off the source: who writes stock, who builds outbox rows,
who may run driver statements, and that no router chooses by database dialect."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "taskhub"
MODULES = {
    path.relative_to(SRC).as_posix(): path.read_text()
    for path in SRC.rglob("*.py")
    if "migrations" not in path.parts
}
ROUTERS = [name for name in MODULES if name.endswith(("router.py", "health.py", "api.py"))]

# What writing each thing looks like, in Core, in the ORM or in SQL text.
WRITERS = {
    "products.stock": [
        r"UPDATE products\b",
        r"update\((_products|Product)\)",
        r"\.stock\s*[+-]?=(?!=)",  # an ORM attribute set, not a comparison
        r"Product\([^)]*\bstock=",
        r"values\([^)]*\bstock=",
    ],
    "stock_movements": [
        r"INSERT INTO stock_movements",
        r"insert\(_movements\)",
        r"StockMovement\(",
    ],
    "reservations": [
        r"INSERT INTO reservations",
        r"UPDATE reservations",
        r"(insert|update)\(_reservations\)",
        r"Reservation\(",
    ],
    "outbox rows": [r"INSERT INTO outbox", r"insert\((_outbox|OutboxEvent)\)", r"OutboxEvent\("],
}
OWNERS = {
    "products.stock": {"catalog/inventory.py"},
    "stock_movements": {"catalog/inventory.py"},
    "reservations": {"catalog/inventory.py"},
    "outbox rows": {"messaging/outbox.py"},
}
# Definitions are not writes: the models, and schema fields named `stock`.
NOT_WRITERS = {"models/product.py", "models/order.py", "models/outbox.py", "catalog/schemas.py"}


def writers_of(thing: str) -> set[str]:
    """The modules whose code matches one of the thing's write patterns."""
    patterns = [re.compile(p) for p in WRITERS[thing]]
    return {
        name
        for name, text in MODULES.items()
        if name not in NOT_WRITERS and any(p.search(_code(text)) for p in patterns)
    }


def _code(text: str) -> str:
    """The module without its docstrings and comments (prose may name anything)."""
    tree = ast.parse(text)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                body[0] = ast.Pass()
    return ast.unparse(tree)


@pytest.mark.parametrize("thing", sorted(WRITERS))
def test_each_thing_has_exactly_one_writer(thing: str) -> None:
    assert writers_of(thing) == OWNERS[thing]


def test_the_patterns_find_writers_where_they_exist() -> None:
    # Guard the test itself: the owners do match their patterns.
    for thing, owners in OWNERS.items():
        for owner in owners:
            code = _code(MODULES[owner])
            assert any(re.search(p, code) for p in WRITERS[thing]), (thing, owner)


@pytest.mark.parametrize("router", ROUTERS)
def test_no_router_chooses_by_dialect_or_runs_driver_statements(router: str) -> None:
    code = _code(MODULES[router]).lower()
    for word in ("dialect", "postgresql", "sqlite", "taskhub.driver import driverstatement"):
        assert word not in code, (router, word)
    imported = {
        node.module
        for node in ast.walk(ast.parse(MODULES[router]))
        if isinstance(node, ast.ImportFrom) and node.module
    }
    # A router may hold a lent connection (TransactionDep) but builds no statement.
    assert "taskhub.pages" not in imported
    for line in MODULES[router].splitlines():
        if line.startswith("from taskhub.driver import"):
            assert "DriverStatement" not in line, router


def test_orders_reach_stock_only_through_the_inventory() -> None:
    # Reading prices is fine; the stock column is the inventory's.
    for name in ("orders/service.py", "orders/handlers.py", "orders/documents.py"):
        assert "_products.c.stock" not in MODULES[name], name
        assert "products.stock" not in _code(MODULES[name]), name
    assert "from taskhub.catalog import inventory" in MODULES["orders/handlers.py"]
