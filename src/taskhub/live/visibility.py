"""Who may see which event on a live stream (the event contract's visibility rule, once).

- `order.*`: the order's owner (`payload.user_id`), and site admins. An event written before
  order payloads carried `user_id` names only its order: its owner is looked up
  (`order_owners`).
- `task.*` and `member.*`: the members of `payload.project_id`, and site admins. A member
  who is removed (`member.removed` naming them) sees that event, and their stream ends.

A stream subscribes to one topic; live events and replayed ones pass the same `accepts`.
To find a live event's subscribers without asking every subscription, each topic has a
route (`OrdersTopic.route`, ...), and an event the routes it may go to (`routes_of`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from taskhub.driver import Executor
from taskhub.messaging.fanout import PublishedEvent
from taskhub.orders.events import id_in, order_owners

ORDER_EVENTS = ("order.",)
PROJECT_EVENTS = ("task.", "member.")
MEMBER_REMOVED = "member.removed"


@dataclass(frozen=True, slots=True)
class OrdersTopic:
    """The order events of one user's orders, or of every order (`everyone`: a site admin)."""

    user_id: int
    everyone: bool

    prefixes = ORDER_EVENTS

    @property
    def route(self) -> tuple[str, int | None]:
        """Where the hub files the stream (`routes_of`)."""
        return ("order", None) if self.everyone else ("order", self.user_id)

    def needs_owner(self, event: PublishedEvent) -> bool:
        """Whether `accepts` needs the order's owner, which the payload does not name."""
        return (
            not self.everyone
            and event.type.startswith(ORDER_EVENTS)
            and id_in(event.payload, "user_id") is None
        )

    def accepts(self, event: PublishedEvent, owner: int | None = None) -> bool:
        """Whether the event belongs on this stream (`owner`: looked up when the payload
        lacks it)."""
        if not event.type.startswith(ORDER_EVENTS):
            return False
        if self.everyone:
            return True
        return (id_in(event.payload, "user_id") or owner) == self.user_id

    def ends_with(self, event: PublishedEvent) -> bool:  # noqa: ARG002 (the topics' protocol)
        """Nothing on an orders stream ends it."""
        return False


@dataclass(frozen=True, slots=True)
class ProjectTopic:
    """The task and member events of one project, for a member (or a site admin)."""

    project_id: int
    user_id: int
    site_admin: bool

    prefixes = PROJECT_EVENTS

    @property
    def route(self) -> tuple[str, int | None]:
        """Where the hub files the stream (`routes_of`)."""
        return ("project", self.project_id)

    def needs_owner(self, event: PublishedEvent) -> bool:  # noqa: ARG002
        """Project events name their project."""
        return False

    def accepts(self, event: PublishedEvent, owner: int | None = None) -> bool:  # noqa: ARG002
        """Whether the event is about this project."""
        return (
            event.type.startswith(PROJECT_EVENTS)
            and id_in(event.payload, "project_id") == self.project_id
        )

    def ends_with(self, event: PublishedEvent) -> bool:
        """The event removes the watching member (a site admin may go on watching)."""
        return (
            event.type == MEMBER_REMOVED
            and not self.site_admin
            and self.accepts(event)
            and id_in(event.payload, "user_id") == self.user_id
        )


Topic = OrdersTopic | ProjectTopic
# ("order", None): every order's events; ("order", user id); ("project", project id).
Route = tuple[str, int | None]
EVERY_ORDER: Route = ("order", None)


def routes_of(event: PublishedEvent, owner: int | None) -> tuple[Route, ...]:
    """The routes of the topics that may accept the event (`owner`: looked up when the
    payload does not name it)."""
    if event.type.startswith(ORDER_EVENTS):
        owner = id_in(event.payload, "user_id") or owner
        return (EVERY_ORDER,) if owner is None else (EVERY_ORDER, ("order", owner))
    if event.type.startswith(PROJECT_EVENTS):
        project_id = id_in(event.payload, "project_id")
        return () if project_id is None else (("project", project_id),)
    return ()


async def visible(
    topic: Topic, events: Sequence[PublishedEvent], db: Executor
) -> list[PublishedEvent]:
    """The events of `events` the topic accepts, owners looked up in one statement."""
    missing = [
        order_id
        for event in events
        if topic.needs_owner(event) and (order_id := id_in(event.payload, "order_id")) is not None
    ]
    owners = await order_owners(db, missing)
    return [
        event
        for event in events
        if topic.accepts(event, owners.get(id_in(event.payload, "order_id") or 0))
    ]
