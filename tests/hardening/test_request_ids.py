"""X-Request-ID: echoed when the caller sends a valid one, otherwise made up, never repeated."""

from __future__ import annotations

import os
import re

import httpx
import pytest

from taskhub.middleware import new_request_id

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def test_made_up_ids_are_32_hex_digits_and_unique() -> None:
    ids = [new_request_id() for _ in range(10_000)]
    assert all(HEX32.match(i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_process_draws_ids_of_its_own() -> None:
    # Workers forked from one parent must not hand out the same ids.
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.write(writer, new_request_id().encode())
        os._exit(0)
    os.close(writer)
    os.waitpid(pid, 0)
    child = os.read(reader, 64).decode()
    os.close(reader)
    parent = new_request_id()
    assert HEX32.match(child)
    assert child[:20] != parent[:20]


@pytest.mark.parametrize("shape", ["sqlite"], indirect=True)
async def test_requests_get_an_id_and_a_valid_incoming_one_is_kept(
    client: httpx.AsyncClient,
) -> None:
    first, second = await client.get("/health"), await client.get("/health")
    assert HEX32.match(first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    kept = await client.get("/health", headers={"X-Request-ID": "trace-42.a:b"})
    assert kept.headers["x-request-id"] == "trace-42.a:b"
    replaced = await client.get("/health", headers={"X-Request-ID": "bad id <script>"})
    assert HEX32.match(replaced.headers["x-request-id"])
