from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="ActivityOut")


@_attrs_define
class ActivityOut:
    """One entry of a task's activity log.

    Attributes:
        id (int):
        actor_id (int | None):
        field (str):
        old_value (None | str):
        new_value (None | str):
        event_id (None | str): The id of the event (task.created or task.updated) that announced this change; null for
            entries older than the events
        created_at (datetime.datetime):
    """

    id: int
    actor_id: int | None
    field: str
    old_value: None | str
    new_value: None | str
    event_id: None | str
    created_at: datetime.datetime
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        actor_id: int | None
        actor_id = self.actor_id

        field = self.field

        old_value: None | str
        old_value = self.old_value

        new_value: None | str
        new_value = self.new_value

        event_id: None | str
        event_id = self.event_id

        created_at = self.created_at.isoformat()

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "id": id,
                "actor_id": actor_id,
                "field": field,
                "old_value": old_value,
                "new_value": new_value,
                "event_id": event_id,
                "created_at": created_at,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        id = d.pop("id")

        def _parse_actor_id(data: object) -> int | None:
            if data is None:
                return data
            return cast(int | None, data)

        actor_id = _parse_actor_id(d.pop("actor_id"))

        field = d.pop("field")

        def _parse_old_value(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        old_value = _parse_old_value(d.pop("old_value"))

        def _parse_new_value(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        new_value = _parse_new_value(d.pop("new_value"))

        def _parse_event_id(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        event_id = _parse_event_id(d.pop("event_id"))

        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))

        activity_out = cls(
            id=id,
            actor_id=actor_id,
            field=field,
            old_value=old_value,
            new_value=new_value,
            event_id=event_id,
            created_at=created_at,
        )

        activity_out.additional_properties = d
        return activity_out

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
