from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

if TYPE_CHECKING:
    from ..models.order_line_in import OrderLineIn


T = TypeVar("T", bound="OrderCreateIn")


@_attrs_define
class OrderCreateIn:
    """A new order: 1 to 100 lines; lines for the same product are merged.

    Attributes:
        items (list[OrderLineIn]):
    """

    items: list[OrderLineIn]

    def to_dict(self) -> dict[str, Any]:
        items = []
        for items_item_data in self.items:
            items_item = items_item_data.to_dict()
            items.append(items_item)

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "items": items,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.order_line_in import OrderLineIn  # noqa: PLC0415

        d = dict(src_dict)
        items = []
        _items = d.pop("items")
        for items_item_data in _items:
            items_item = OrderLineIn.from_dict(items_item_data)

            items.append(items_item)

        order_create_in = cls(
            items=items,
        )

        return order_create_in
