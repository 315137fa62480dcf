from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..models.webhook_update_in_scope import WebhookUpdateInScope
from ..types import UNSET, Unset

T = TypeVar("T", bound="WebhookUpdateIn")


@_attrs_define
class WebhookUpdateIn:
    """A partial update of an order endpoint (`scope` too, `all` for site admins only).

    Attributes:
        url (str | Unset): An `http` or `https` URL whose host resolves to public addresses only
        events (list[str] | Unset): Event types or prefixes to receive; omitted: every event the endpoint may see
        description (None | str | Unset):
        active (bool | Unset):
        scope (WebhookUpdateInScope | Unset): `own`: your orders' events; `all` (site admins): every order's
    """

    url: str | Unset = UNSET
    events: list[str] | Unset = UNSET
    description: None | str | Unset = UNSET
    active: bool | Unset = UNSET
    scope: WebhookUpdateInScope | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        url = self.url

        events: list[str] | Unset = UNSET
        if not isinstance(self.events, Unset):
            events = self.events

        description: None | str | Unset
        if isinstance(self.description, Unset):
            description = UNSET
        else:
            description = self.description

        active = self.active

        scope: str | Unset = UNSET
        if not isinstance(self.scope, Unset):
            scope = self.scope.value

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if url is not UNSET:
            field_dict["url"] = url
        if events is not UNSET:
            field_dict["events"] = events
        if description is not UNSET:
            field_dict["description"] = description
        if active is not UNSET:
            field_dict["active"] = active
        if scope is not UNSET:
            field_dict["scope"] = scope

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        url = d.pop("url", UNSET)

        events = cast(list[str], d.pop("events", UNSET))

        def _parse_description(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        description = _parse_description(d.pop("description", UNSET))

        active = d.pop("active", UNSET)

        _scope = d.pop("scope", UNSET)
        scope: WebhookUpdateInScope | Unset
        if isinstance(_scope, Unset):
            scope = UNSET
        else:
            scope = WebhookUpdateInScope(_scope)

        webhook_update_in = cls(
            url=url,
            events=events,
            description=description,
            active=active,
            scope=scope,
        )

        return webhook_update_in
