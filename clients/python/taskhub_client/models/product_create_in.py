from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="ProductCreateIn")


@_attrs_define
class ProductCreateIn:
    """A new product and its initial stock.

    Attributes:
        sku (str):
        name (str):
        price_cents (int): Integer cents
        description (None | str | Unset):
        stock (int | Unset):  Default: 0.
    """

    sku: str
    name: str
    price_cents: int
    description: None | str | Unset = UNSET
    stock: int | Unset = 0

    def to_dict(self) -> dict[str, Any]:
        sku = self.sku

        name = self.name

        price_cents = self.price_cents

        description: None | str | Unset
        if isinstance(self.description, Unset):
            description = UNSET
        else:
            description = self.description

        stock = self.stock

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "sku": sku,
                "name": name,
                "price_cents": price_cents,
            }
        )
        if description is not UNSET:
            field_dict["description"] = description
        if stock is not UNSET:
            field_dict["stock"] = stock

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        sku = d.pop("sku")

        name = d.pop("name")

        price_cents = d.pop("price_cents")

        def _parse_description(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        description = _parse_description(d.pop("description", UNSET))

        stock = d.pop("stock", UNSET)

        product_create_in = cls(
            sku=sku,
            name=name,
            price_cents=price_cents,
            description=description,
            stock=stock,
        )

        return product_create_in
