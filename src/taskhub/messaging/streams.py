"""Redis key naming for the event streams, in one place.

Every key of one partition carries the same Redis Cluster hash tag, `{events.<partition>}`,
so that the stream, its dead-letter stream and any later per-partition key live in one slot:
a MULTI that dead-letters (XADD to the dead stream + XACK) stays atomic on a cluster, and
partitions can later spread over the cluster's nodes. Today there is one partition, `p0`;
`partition_for` is the single place that will map an event to its partition (by product).
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

GROUP = "taskhub-workers"
ENVELOPE_FIELD = b"envelope"
Fields = dict[bytes, bytes]
Entry = tuple[str, Fields | None]
DEFAULT_PARTITION = "p0"


@dataclass(frozen=True, slots=True)
class StreamKeys:
    """The keys of one event partition under a deployment prefix."""

    prefix: str
    partition: str = DEFAULT_PARTITION

    @property
    def tag(self) -> str:
        """The hash-tagged namespace shared by every key of the partition."""
        return f"{self.prefix}:{{events.{self.partition}}}"

    @property
    def stream(self) -> str:
        """The main event stream."""
        return f"{self.tag}:stream"

    @property
    def dead(self) -> str:
        """The dead-letter stream of the partition."""
        return f"{self.tag}:dead"

    @property
    def group(self) -> str:
        """The consumer group every worker joins."""
        return GROUP


def partition_for(_payload: dict[str, object]) -> str:
    """The partition of an event; one for now (see the module docstring)."""
    return DEFAULT_PARTITION


def all_partitions(prefix: str) -> list[StreamKeys]:
    """Every partition a worker consumes and the tools inspect."""
    return [StreamKeys(prefix, DEFAULT_PARTITION)]


def consumer_name() -> str:
    """A name unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


async def ensure_group(redis: Redis, keys: StreamKeys) -> None:
    """Create the stream and its group (from the start of the stream) if absent."""
    try:
        await redis.xgroup_create(keys.stream, keys.group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def as_str(value: Any) -> str:
    """Redis replies are bytes unless the client decodes them."""
    return value.decode() if isinstance(value, bytes) else value


def entries_of(reply: Any) -> list[Entry]:
    """The (id, fields) pairs of an XRANGE/XAUTOCLAIM entry list; fields None when deleted."""
    return [(as_str(entry_id), fields or None) for entry_id, fields in reply or []]


def read_entries(reply: Any) -> list[Entry]:
    """The entries of an XREADGROUP reply, over all of its streams."""
    return [entry for _stream, batch in reply or [] for entry in entries_of(batch)]
