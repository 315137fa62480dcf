from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="TransferOwnershipIn")


@_attrs_define
class TransferOwnershipIn:
    """Who becomes the owner; they must already be a member.

    Attributes:
        user_id (int):
    """

    user_id: int

    def to_dict(self) -> dict[str, Any]:
        user_id = self.user_id

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "user_id": user_id,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        user_id = d.pop("user_id")

        transfer_ownership_in = cls(
            user_id=user_id,
        )

        return transfer_ownership_in
