"""Process-wide tuning for the long-running processes (the server and the workers).

CPython's cyclic garbage collector runs a young-generation pass every 700 net allocations of
container objects. A request through FastAPI, pydantic and SQLAlchemy allocates thousands,
so passes ran several times per request, and each older-generation pass walked every object
the process had imported. Two standard remedies, as the `gc` documentation describes them:

- a higher young-generation threshold (the cycles are still collected, in fewer passes);
- `gc.freeze()` once start-up is over: the modules, routes and schemas built at import move
  to a permanent generation that later passes skip.

Not applied to the test suite's in-process apps, which come and go.
"""

from __future__ import annotations

import gc


def tune_gc(gen0_threshold: int) -> None:
    """Collect start-up garbage, freeze what survives, and raise the young threshold."""
    gc.collect()
    gc.freeze()
    if gen0_threshold:
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(gen0_threshold, gen1, gen2)
