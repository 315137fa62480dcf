from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast
from uuid import UUID

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.order_event_payload import OrderEventPayload


T = TypeVar("T", bound="OrderEvent")


@_attrs_define
class OrderEvent:
    """An order event, as a message's `data`.

    Attributes:
        id (UUID): The event's id, also the message's `id`
        type_ (str): `order.created`, …
        occurred_at (datetime.datetime):
        version (int):
        request_id (None | str): The id of the request that caused it
        payload (OrderEventPayload): The payload of an `order.*` event: `order.created` `{order_id, user_id, status,
            total_cents}`; `order.reserved`, `order.confirmed`, `order.paid` `{order_id, user_id,
            status}`; `order.failed` and `order.cancelled` add `reason`.
    """

    id: UUID
    type_: str
    occurred_at: datetime.datetime
    version: int
    request_id: None | str
    payload: OrderEventPayload
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        id = str(self.id)

        type_ = self.type_

        occurred_at = self.occurred_at.isoformat()

        version = self.version

        request_id: None | str
        request_id = self.request_id

        payload = self.payload.to_dict()

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "id": id,
                "type": type_,
                "occurred_at": occurred_at,
                "version": version,
                "request_id": request_id,
                "payload": payload,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.order_event_payload import OrderEventPayload  # noqa: PLC0415

        d = dict(src_dict)
        id = UUID(d.pop("id"))

        type_ = d.pop("type")

        occurred_at = datetime.datetime.fromisoformat(d.pop("occurred_at"))

        version = d.pop("version")

        def _parse_request_id(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        request_id = _parse_request_id(d.pop("request_id"))

        payload = OrderEventPayload.from_dict(d.pop("payload"))

        order_event = cls(
            id=id,
            type_=type_,
            occurred_at=occurred_at,
            version=version,
            request_id=request_id,
            payload=payload,
        )

        order_event.additional_properties = d
        return order_event

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
