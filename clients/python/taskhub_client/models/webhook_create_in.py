from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..models.webhook_create_in_scope import WebhookCreateInScope
from ..types import UNSET, Unset

T = TypeVar("T", bound="WebhookCreateIn")


@_attrs_define
class WebhookCreateIn:
    """A new endpoint for order events.

    Attributes:
        url (str): An `http` or `https` URL whose host resolves to public addresses only
        events (list[str] | None | Unset):
        description (None | str | Unset):
        scope (WebhookCreateInScope | Unset): `own`: your orders' events; `all` (site admins): every order's Default:
            WebhookCreateInScope.OWN.
    """

    url: str
    events: list[str] | None | Unset = UNSET
    description: None | str | Unset = UNSET
    scope: WebhookCreateInScope | Unset = WebhookCreateInScope.OWN

    def to_dict(self) -> dict[str, Any]:
        url = self.url

        events: list[str] | None | Unset
        if isinstance(self.events, Unset):
            events = UNSET
        elif isinstance(self.events, list):
            events = self.events

        else:
            events = self.events

        description: None | str | Unset
        if isinstance(self.description, Unset):
            description = UNSET
        else:
            description = self.description

        scope: str | Unset = UNSET
        if not isinstance(self.scope, Unset):
            scope = self.scope.value

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "url": url,
            }
        )
        if events is not UNSET:
            field_dict["events"] = events
        if description is not UNSET:
            field_dict["description"] = description
        if scope is not UNSET:
            field_dict["scope"] = scope

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        url = d.pop("url")

        def _parse_events(data: object) -> list[str] | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                events_type_0 = cast(list[str], data)

                return events_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[str] | None | Unset, data)

        events = _parse_events(d.pop("events", UNSET))

        def _parse_description(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        description = _parse_description(d.pop("description", UNSET))

        _scope = d.pop("scope", UNSET)
        scope: WebhookCreateInScope | Unset
        if isinstance(_scope, Unset):
            scope = UNSET
        else:
            scope = WebhookCreateInScope(_scope)

        webhook_create_in = cls(
            url=url,
            events=events,
            description=description,
            scope=scope,
        )

        return webhook_create_in
