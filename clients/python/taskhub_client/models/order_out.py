from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.order_status import OrderStatus

if TYPE_CHECKING:
    from ..models.order_item_out import OrderItemOut


T = TypeVar("T", bound="OrderOut")


@_attrs_define
class OrderOut:
    """An order with its lines and state.

    Attributes:
        id (int):
        user_id (int):
        status (OrderStatus): The order state machine of design §3.
        status_reason (None | str):
        total_cents (int):
        items (list[OrderItemOut]):
        created_at (datetime.datetime):
        updated_at (datetime.datetime):
        reserved_at (datetime.datetime | None):
        confirmed_at (datetime.datetime | None):
        paid_at (datetime.datetime | None):
        cancelled_at (datetime.datetime | None):
    """

    id: int
    user_id: int
    status: OrderStatus
    status_reason: None | str
    total_cents: int
    items: list[OrderItemOut]
    created_at: datetime.datetime
    updated_at: datetime.datetime
    reserved_at: datetime.datetime | None
    confirmed_at: datetime.datetime | None
    paid_at: datetime.datetime | None
    cancelled_at: datetime.datetime | None
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        user_id = self.user_id

        status = self.status.value

        status_reason: None | str
        status_reason = self.status_reason

        total_cents = self.total_cents

        items = []
        for items_item_data in self.items:
            items_item = items_item_data.to_dict()
            items.append(items_item)

        created_at = self.created_at.isoformat()

        updated_at = self.updated_at.isoformat()

        reserved_at: None | str
        if isinstance(self.reserved_at, datetime.datetime):
            reserved_at = self.reserved_at.isoformat()
        else:
            reserved_at = self.reserved_at

        confirmed_at: None | str
        if isinstance(self.confirmed_at, datetime.datetime):
            confirmed_at = self.confirmed_at.isoformat()
        else:
            confirmed_at = self.confirmed_at

        paid_at: None | str
        if isinstance(self.paid_at, datetime.datetime):
            paid_at = self.paid_at.isoformat()
        else:
            paid_at = self.paid_at

        cancelled_at: None | str
        if isinstance(self.cancelled_at, datetime.datetime):
            cancelled_at = self.cancelled_at.isoformat()
        else:
            cancelled_at = self.cancelled_at

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "id": id,
                "user_id": user_id,
                "status": status,
                "status_reason": status_reason,
                "total_cents": total_cents,
                "items": items,
                "created_at": created_at,
                "updated_at": updated_at,
                "reserved_at": reserved_at,
                "confirmed_at": confirmed_at,
                "paid_at": paid_at,
                "cancelled_at": cancelled_at,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.order_item_out import OrderItemOut  # noqa: PLC0415

        d = dict(src_dict)
        id = d.pop("id")

        user_id = d.pop("user_id")

        status = OrderStatus(d.pop("status"))

        def _parse_status_reason(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        status_reason = _parse_status_reason(d.pop("status_reason"))

        total_cents = d.pop("total_cents")

        items = []
        _items = d.pop("items")
        for items_item_data in _items:
            items_item = OrderItemOut.from_dict(items_item_data)

            items.append(items_item)

        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))

        updated_at = datetime.datetime.fromisoformat(d.pop("updated_at"))

        def _parse_reserved_at(data: object) -> datetime.datetime | None:
            if data is None:
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                reserved_at_type_0 = datetime.datetime.fromisoformat(data)

                return reserved_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None, data)

        reserved_at = _parse_reserved_at(d.pop("reserved_at"))

        def _parse_confirmed_at(data: object) -> datetime.datetime | None:
            if data is None:
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                confirmed_at_type_0 = datetime.datetime.fromisoformat(data)

                return confirmed_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None, data)

        confirmed_at = _parse_confirmed_at(d.pop("confirmed_at"))

        def _parse_paid_at(data: object) -> datetime.datetime | None:
            if data is None:
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                paid_at_type_0 = datetime.datetime.fromisoformat(data)

                return paid_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None, data)

        paid_at = _parse_paid_at(d.pop("paid_at"))

        def _parse_cancelled_at(data: object) -> datetime.datetime | None:
            if data is None:
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                cancelled_at_type_0 = datetime.datetime.fromisoformat(data)

                return cancelled_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None, data)

        cancelled_at = _parse_cancelled_at(d.pop("cancelled_at"))

        order_out = cls(
            id=id,
            user_id=user_id,
            status=status,
            status_reason=status_reason,
            total_cents=total_cents,
            items=items,
            created_at=created_at,
            updated_at=updated_at,
            reserved_at=reserved_at,
            confirmed_at=confirmed_at,
            paid_at=paid_at,
            cancelled_at=cancelled_at,
        )

        order_out.additional_properties = d
        return order_out

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
