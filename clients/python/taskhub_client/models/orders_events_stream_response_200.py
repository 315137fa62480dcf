from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar
from uuid import UUID

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="OrdersEventsStreamResponse200")


@_attrs_define
class OrdersEventsStreamResponse200:
    """
    Attributes:
        id (UUID): The event's id: send it back as `Last-Event-ID` to resume
        event (str): The event's type: `order.created`, `order.reserved`, `order.failed`, `order.confirmed`,
            `order.paid`, `order.cancelled`
        data (str):
    """

    id: UUID
    event: str
    data: str
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        id = str(self.id)

        event = self.event

        data = self.data

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "id": id,
                "event": event,
                "data": data,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        id = UUID(d.pop("id"))

        event = d.pop("event")

        data = d.pop("data")

        orders_events_stream_response_200 = cls(
            id=id,
            event=event,
            data=data,
        )

        orders_events_stream_response_200.additional_properties = d
        return orders_events_stream_response_200

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
