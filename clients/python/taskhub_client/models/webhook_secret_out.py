from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.webhook_scope import WebhookScope

T = TypeVar("T", bound="WebhookSecretOut")


@_attrs_define
class WebhookSecretOut:
    """An endpoint with its signing secret, shown only by create and rotate-secret.

    Attributes:
        id (int):
        url (str):
        description (None | str):
        events (list[str]):
        scope (WebhookScope): Whose events an endpoint receives.
        owner_id (int | None): The user whose endpoint it is (order endpoints)
        project_id (int | None): The project whose endpoint it is
        active (bool):
        disabled_reason (None | str): Why the endpoint was disabled (null while active)
        created_at (datetime.datetime):
        updated_at (datetime.datetime):
        secret (str): `whsec_` + base64 of 32 random bytes; the decoded bytes are the HMAC-SHA256 key (Standard
            Webhooks)
    """

    id: int
    url: str
    description: None | str
    events: list[str]
    scope: WebhookScope
    owner_id: int | None
    project_id: int | None
    active: bool
    disabled_reason: None | str
    created_at: datetime.datetime
    updated_at: datetime.datetime
    secret: str
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        url = self.url

        description: None | str
        description = self.description

        events = self.events

        scope = self.scope.value

        owner_id: int | None
        owner_id = self.owner_id

        project_id: int | None
        project_id = self.project_id

        active = self.active

        disabled_reason: None | str
        disabled_reason = self.disabled_reason

        created_at = self.created_at.isoformat()

        updated_at = self.updated_at.isoformat()

        secret = self.secret

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "id": id,
                "url": url,
                "description": description,
                "events": events,
                "scope": scope,
                "owner_id": owner_id,
                "project_id": project_id,
                "active": active,
                "disabled_reason": disabled_reason,
                "created_at": created_at,
                "updated_at": updated_at,
                "secret": secret,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        id = d.pop("id")

        url = d.pop("url")

        def _parse_description(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        description = _parse_description(d.pop("description"))

        events = cast(list[str], d.pop("events"))

        scope = WebhookScope(d.pop("scope"))

        def _parse_owner_id(data: object) -> int | None:
            if data is None:
                return data
            return cast(int | None, data)

        owner_id = _parse_owner_id(d.pop("owner_id"))

        def _parse_project_id(data: object) -> int | None:
            if data is None:
                return data
            return cast(int | None, data)

        project_id = _parse_project_id(d.pop("project_id"))

        active = d.pop("active")

        def _parse_disabled_reason(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        disabled_reason = _parse_disabled_reason(d.pop("disabled_reason"))

        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))

        updated_at = datetime.datetime.fromisoformat(d.pop("updated_at"))

        secret = d.pop("secret")

        webhook_secret_out = cls(
            id=id,
            url=url,
            description=description,
            events=events,
            scope=scope,
            owner_id=owner_id,
            project_id=project_id,
            active=active,
            disabled_reason=disabled_reason,
            created_at=created_at,
            updated_at=updated_at,
            secret=secret,
        )

        webhook_secret_out.additional_properties = d
        return webhook_secret_out

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
