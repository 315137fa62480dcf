"""Some webhook tests again, on PostgreSQL through a PgBouncer in transaction mode
(DB_PGBOUNCER=true; tests/pgbouncer.py): the fan-out, the claims and the delivery loop's
statements hold no session state."""

from __future__ import annotations

import pytest

from tests.webhooks.test_claims import (
    test_concurrent_claims_take_disjoint_rows_and_leases_run_out as test_claims_behind_pgbouncer,
)
from tests.webhooks.test_delivery import (
    test_order_events_reach_their_owner_and_the_all_scope_only as test_orders_behind_pgbouncer,
)
from tests.webhooks.test_delivery import (
    test_retries_arrive_and_a_deduplicating_receiver_accepts_each_event_once as test_retries_behind_pgbouncer,  # noqa: E501
)

__all__ = [
    "test_claims_behind_pgbouncer",
    "test_orders_behind_pgbouncer",
    "test_retries_behind_pgbouncer",
]


@pytest.fixture(scope="session", params=["pgbouncer"])
def shape(request: pytest.FixtureRequest) -> str:
    """Only the PgBouncer shape here (the other modules run these on SQLite and PostgreSQL)."""
    return str(request.param)
