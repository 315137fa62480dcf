"""Redis keys of the event streams, partitioning, and the per-stream reads the pipeline makes.

**Partitions.** `STREAM_PARTITIONS` (N, 1 to 256) streams carry the events. An event goes
to partition `crc32(key) mod N`, where the key is the decimal text of its payload's
`order_id`, or else its `project_id` (`partition_index`): every event of one order (or one
project) lands in one stream, in the order the relay read them from the outbox. An event
naming neither goes to `p0`.

**Keys.** Every key of one partition carries the same Redis Cluster hash tag,
`{events.p<k>}`, so that the stream, its dead-letter stream, its failure counts and its
binding live in one slot: a MULTI that dead-letters (XADD to the dead stream + XACK + HDEL)
stays atomic on a cluster, and the partitions spread over the cluster's nodes. Every
command here names one partition's keys only; nothing crosses slots. The relays' pause
flag (`control_keys`) is a key of its own.

Retention: nothing caps the stream when writing (no `MAXLEN`). `stream_state` finds the
trim point, the oldest entry some consumer group still needs (its oldest pending entry, or
the first one it has not been delivered), and `trim` removes only entries older than that
(`XTRIM MINID ~`, which never removes more than asked). The relay holds back while a group's
lag (entries not yet delivered) is at STREAM_MAXLEN; the outbox keeps the events meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.crc import key_slot
from redis.exceptions import AskError, MovedError, RedisError, ResponseError

from taskhub.redis_client import RedisClient, is_cluster

GROUP = "taskhub-workers"
ENVELOPE_FIELD = b"envelope"
Fields = dict[bytes, bytes]
Entry = tuple[str, Fields | None]
DEFAULT_PARTITION = "p0"
MAX_PARTITIONS = 256
# Payload keys an event is partitioned by, in order of preference (EVENTS.md).
PARTITION_KEYS = ("order_id", "project_id")


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
    def failures(self) -> str:
        """Hash: entry id → deterministic failures so far (only entries that failed)."""
        return f"{self.tag}:failures"

    @property
    def binding(self) -> str:
        """The id of the database (deployment) whose events the partition carries."""
        return f"{self.tag}:deployment"

    @property
    def group(self) -> str:
        """The consumer group every worker joins."""
        return GROUP


def partition_index(payload: Mapping[str, object], count: int) -> int:
    """The partition number (0 to `count` - 1) of an event with this payload."""
    if count <= 1:
        return 0
    for name in PARTITION_KEYS:
        key = payload.get(name)
        if key is not None and not isinstance(key, bool):
            return zlib.crc32(str(key).encode()) % count
    return 0


def partition_for(payload: Mapping[str, object], count: int = 1) -> str:
    """The partition (`p<k>`) of an event with this payload, among `count`."""
    return f"p{partition_index(payload, count)}"


def all_partitions(prefix: str, count: int) -> list[StreamKeys]:
    """The keys of partitions p0 … p<count - 1>: what workers consume and tools inspect."""
    if not 1 <= count <= MAX_PARTITIONS:
        raise ValueError(f"STREAM_PARTITIONS must be 1 to {MAX_PARTITIONS}, not {count}")
    return [StreamKeys(prefix, f"p{index}") for index in range(count)]


@dataclass(frozen=True, slots=True)
class ControlKeys:
    """Keys that concern every partition (each a key of its own: one slot per command)."""

    prefix: str

    @property
    def relay_paused(self) -> str:
        """Set while the relays must not publish (`taskhub streams drain`)."""
        return f"{self.prefix}:events:relay-paused"


async def lengths_of(redis: RedisClient, streams: Sequence[str]) -> list[int]:
    """XLEN of each stream, in one pipeline (a cluster client splits it by node)."""
    if not streams:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for stream in streams:
            pipe.xlen(stream)
        return [int(n) for n in await pipe.execute()]


async def partitions_in_use(redis: RedisClient, prefix: str, count: int) -> list[StreamKeys]:
    """Partitions at or beyond `count` whose stream holds entries not yet delivered or not
    acknowledged: left behind by a larger STREAM_PARTITIONS."""
    extra = [StreamKeys(prefix, f"p{index}") for index in range(count, MAX_PARTITIONS)]
    lengths = await lengths_of(redis, [keys.stream for keys in extra])
    candidates = [keys for keys, length in zip(extra, lengths, strict=True) if int(length)]
    states = await asyncio.gather(*(stream_state(redis, keys) for keys in candidates))
    return [keys for keys, state in zip(candidates, states, strict=True) if state.unsettled]


# How long a relay waits for a cluster replica to confirm the entries it added.
REPLICA_WAIT_MS = 500


class NotReplicated(RedisError):
    """A cluster master did not get the entries onto its replica in time: not published."""


async def publish(redis: RedisClient, entries: Sequence[tuple[StreamKeys, Fields]]) -> None:
    """XADD each entry to its partition's stream, in order, in one pipeline.

    On a Redis Cluster, each master that took entries and has a replica is then asked to
    `WAIT` until one replica holds them (on the connection that sent them, which is what
    WAIT counts): a failover promotes that replica, so no entry whose outbox row is marked
    published can vanish with its master. A master that cannot confirm in time raises
    NotReplicated; a moved slot raises too, after the client re-read the cluster's layout.
    The caller then leaves the rows unpublished and tries again (a duplicate entry is
    harmless: the handlers are idempotent).
    """
    if not entries:
        return
    async with redis.pipeline(transaction=False) as pipe:
        for keys, fields in entries:
            # No MAXLEN: only `trim` removes entries, once every group acknowledged them.
            pipe.xadd(keys.stream, dict(fields))  # type: ignore[arg-type]
        if not is_cluster(redis):
            await pipe.execute()
            return
        if not redis.nodes_manager.slots_cache:
            await redis.initialize()  # the layout tells which masters have a replica
        waits = 0
        masters: dict[str, Any] = {}
        for keys in {keys.stream: keys for keys, _ in entries}.values():
            nodes = redis.nodes_manager.slots_cache.get(key_slot(keys.stream.encode()), [])
            if len(nodes) > 1:  # a master with a replica that is not failed
                masters.setdefault(nodes[0].name, nodes[0])
        for node in masters.values():
            pipe.execute_command("WAIT", 1, REPLICA_WAIT_MS, target_nodes=node)
            waits += 1
        try:
            replies = await pipe.execute(allow_redirections=False)  # type: ignore[call-arg]
        except (MovedError, AskError):
            await redis.nodes_manager.initialize()
            raise
    if waits and min(int(reply) for reply in replies[-waits:]) < 1:
        await redis.nodes_manager.initialize()  # a replica may have failed: look again
        raise NotReplicated("a cluster master did not replicate the new entries in time")


def consumer_name() -> str:
    """A name unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


async def ensure_group(redis: RedisClient, keys: StreamKeys) -> bool:
    """Create the stream and its group (from the start of the stream) if absent; True when
    this call created the group."""
    try:
        await redis.xgroup_create(keys.stream, keys.group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
        return False
    return True


async def group_exists(redis: RedisClient, keys: StreamKeys) -> bool:
    """Whether the partition's stream has its consumer group."""
    try:
        groups = await redis.xinfo_groups(keys.stream)
    except ResponseError as exc:
        if "no such key" in str(exc).lower():
            return False
        raise
    return any(as_str(group["name"]) == keys.group for group in groups)


@dataclass(frozen=True, slots=True)
class GroupState:
    """One consumer group of a stream, as XINFO GROUPS and XPENDING see it."""

    name: str
    last_delivered: str
    pending: int
    lag: int
    oldest_pending: str | None


@dataclass(frozen=True, slots=True)
class StreamState:
    """A stream's length, its groups, and the oldest entry any group still needs."""

    length: int
    groups: list[GroupState] = field(default_factory=list)

    def group(self, name: str) -> GroupState | None:
        """The named group's state, if the group exists."""
        return next((g for g in self.groups if g.name == name), None)

    @property
    def max_lag(self) -> int:
        """The largest number of entries a group has not been delivered yet."""
        return max((g.lag for g in self.groups), default=0)

    @property
    def unsettled(self) -> int:
        """Entries some group has not been delivered, or has not acknowledged."""
        return sum(g.lag + g.pending for g in self.groups)

    @property
    def trim_point(self) -> str | None:
        """Entries with smaller ids are acknowledged by every group (None: keep all)."""
        if not self.groups:
            return None  # nobody registered to read: nothing may be dropped
        needed = [
            g.oldest_pending if g.oldest_pending is not None else next_id(g.last_delivered)
            for g in self.groups
        ]
        return min(needed, key=id_key)


async def stream_state(redis: RedisClient, keys: StreamKeys) -> StreamState:
    """Read the stream's length and groups (two round trips at most)."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xlen(keys.stream)
        pipe.xinfo_groups(keys.stream)
        try:
            length, groups = await pipe.execute()
        except ResponseError as exc:
            if "no such key" in str(exc).lower():
                return StreamState(length=0)
            raise
    names = [as_str(g["name"]) for g in groups if int(g.get("pending") or 0)]
    oldest: dict[str, str | None] = {}
    if names:
        async with redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.xpending(keys.stream, name)
            for name, summary in zip(names, await pipe.execute(), strict=True):
                low = summary.get("min")
                oldest[name] = as_str(low) if low is not None else None
    out = []
    for g in groups:
        name = as_str(g["name"])
        pending = int(g.get("pending") or 0)
        lag = g.get("lag")
        out.append(
            GroupState(
                name=name,
                last_delivered=as_str(g["last-delivered-id"]),
                pending=pending,
                # Redis cannot always count the lag (then nil): the stream's length less
                # the pending entries bounds it from above.
                lag=int(lag) if lag is not None else max(0, int(length) - pending),
                oldest_pending=oldest.get(name),
            )
        )
    return StreamState(length=int(length), groups=out)


async def trim(redis: RedisClient, keys: StreamKeys, state: StreamState) -> int:
    """Drop entries every group has acknowledged (older than `state.trim_point`)."""
    point = state.trim_point
    if point is None or state.length == 0:
        return 0
    return int(await redis.xtrim(keys.stream, minid=point, approximate=True))


def id_key(entry_id: str) -> tuple[int, int]:
    """A stream id as a sortable pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def next_id(entry_id: str) -> str:
    """The smallest id after `entry_id`."""
    ms, seq = id_key(entry_id)
    return f"{ms}-{seq + 1}"


def id_time(entry_id: str) -> float:
    """The Unix time (seconds) a stream id was made at."""
    return id_key(entry_id)[0] / 1000


async def acknowledge(
    redis: RedisClient, keys: StreamKeys, entry_id: str, *, failures: int
) -> None:
    """XACK an entry; with its failure count (HDEL) in the same MULTI when it has one."""
    if not failures:
        await redis.xack(keys.stream, keys.group, entry_id)
        return
    async with redis.pipeline(transaction=True) as pipe:
        pipe.xack(keys.stream, keys.group, entry_id)
        pipe.hdel(keys.failures, entry_id)
        await pipe.execute()


def as_str(value: Any) -> str:
    """Redis replies are bytes unless the client decodes them."""
    return value.decode() if isinstance(value, bytes) else value


def entries_of(reply: Any) -> list[Entry]:
    """The (id, fields) pairs of an XRANGE/XAUTOCLAIM entry list; fields None when deleted."""
    return [(as_str(entry_id), fields or None) for entry_id, fields in reply or []]


def read_entries(reply: Any) -> list[Entry]:
    """The entries of an XREADGROUP reply, over all of its streams."""
    return [entry for _stream, batch in reply or [] for entry in entries_of(batch)]
