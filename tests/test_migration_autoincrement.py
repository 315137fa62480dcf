"""Migration 3f7d9b2a6c15 on an existing SQLite database: every row and reference kept, and
from then on no id is handed out twice."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from taskhub.migrate import downgrade, upgrade
from tests.conftest import make_settings

BEFORE = "8a4c2f6e1b93"
TABLES_WITH_IDS = (
    "users",
    "projects",
    "tasks",
    "task_activity",
    "products",
    "orders",
    "order_items",
    "reservations",
    "stock_movements",
    "outbox",
)
ROWS = """
INSERT INTO users (id, email, hashed_password)
    VALUES (1, 'a@x', 'h'), (2, 'b@x', 'h'), (3, 'c@x', 'h');
INSERT INTO projects (id, title) VALUES (1, 'p');
INSERT INTO project_members (project_id, user_id, role) VALUES (1, 1, 'owner'), (1, 2, 'member');
INSERT INTO tasks (id, project_id, title, status, priority, assignee_id, created_by_id)
    VALUES (1, 1, 't', 'todo', 'none', 2, 1);
INSERT INTO task_activity (id, task_id, actor_id, field) VALUES (1, 1, 1, 'created');
INSERT INTO products (id, sku, name, price_cents, stock) VALUES (1, 'S', 'n', 100, 5);
INSERT INTO orders (id, user_id, status, total_cents) VALUES (1, 2, 'RESERVED', 100);
INSERT INTO order_items (id, order_id, product_id, quantity, unit_price_cents)
    VALUES (1, 1, 1, 1, 100);
INSERT INTO reservations (id, order_id, product_id, quantity, state) VALUES (1, 1, 1, 1, 'held');
INSERT INTO stock_movements (id, product_id, delta, reason, order_id, actor_id)
    VALUES (1, 1, 6, 'initial', NULL, 1), (2, 1, -1, 'reserve', 1, NULL);
INSERT INTO idempotency_keys (user_id, scope, "key", request_hash, expires_at)
    VALUES (2, 's', 'k', 'h', '2030-01-01 00:00:00');
INSERT INTO outbox (id, event_id, type, version, payload, occurred_at)
    VALUES (1, 'e1', 'order.created', 1, '{}', '2026-01-01 00:00:00');
"""
SNAPSHOT = {
    "project_members": "SELECT project_id, user_id, role FROM project_members ORDER BY 1, 2",
    "tasks": "SELECT id, project_id, assignee_id, created_by_id FROM tasks",
    "task_activity": "SELECT id, task_id, actor_id FROM task_activity",
    "orders": "SELECT id, user_id, status FROM orders",
    "order_items": "SELECT id, order_id, product_id FROM order_items",
    "reservations": "SELECT id, order_id, state FROM reservations",
    "stock_movements": "SELECT id, order_id, actor_id, delta FROM stock_movements ORDER BY id",
    "idempotency_keys": "SELECT user_id, scope FROM idempotency_keys",
    "users": "SELECT id, email FROM users ORDER BY id",
}


def snapshot(path: Path) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(path) as db:
        return {name: db.execute(query).fetchall() for name, query in SNAPSHOT.items()}


def table_sql(path: Path, table: str) -> str:
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    return str(row[0])


async def test_existing_rows_survive_and_ids_are_not_reused(tmp_path: Path) -> None:
    path = tmp_path / "existing.db"
    settings = make_settings(database_url=f"sqlite+aiosqlite:///{path}")
    await upgrade(settings, BEFORE)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA foreign_keys=ON")
        db.executescript(ROWS)
    before = snapshot(path)

    await upgrade(settings)
    # Rebuilding the parents ran none of their children's ON DELETE actions.
    assert snapshot(path) == before
    for table in TABLES_WITH_IDS:
        assert "AUTOINCREMENT" in table_sql(path, table), table
    # The check constraints and partial indexes came through the rebuild.
    assert "CHECK (status IN" in table_sql(path, "tasks")
    assert "WHERE state = 'held'" in table_sql(path, "ix_reservations_held_product")

    with sqlite3.connect(path) as db:
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("DELETE FROM users WHERE id = 3")
        db.execute("INSERT INTO users (email, hashed_password) VALUES ('d@x', 'h')")
        assert db.execute("SELECT id FROM users WHERE email = 'd@x'").fetchone() == (4,)
        db.execute("DELETE FROM task_activity WHERE id = 1")
        db.execute("INSERT INTO task_activity (task_id, field) VALUES (1, 'title')")
        assert db.execute("SELECT max(id) FROM task_activity").fetchone() == (2,)

    await downgrade(settings, BEFORE)
    assert "AUTOINCREMENT" not in table_sql(path, "users")
    assert snapshot(path)["project_members"] == before["project_members"]
