from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="UserCreateIn")


@_attrs_define
class UserCreateIn:
    """A site admin creates a user.

    Attributes:
        email (str):
        password (str): 8 characters or more, at most 72 bytes in UTF-8
        full_name (None | str | Unset):
        is_superuser (bool | Unset):  Default: False.
        is_active (bool | Unset):  Default: True.
    """

    email: str
    password: str
    full_name: None | str | Unset = UNSET
    is_superuser: bool | Unset = False
    is_active: bool | Unset = True

    def to_dict(self) -> dict[str, Any]:
        email = self.email

        password = self.password

        full_name: None | str | Unset
        if isinstance(self.full_name, Unset):
            full_name = UNSET
        else:
            full_name = self.full_name

        is_superuser = self.is_superuser

        is_active = self.is_active

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "email": email,
                "password": password,
            }
        )
        if full_name is not UNSET:
            field_dict["full_name"] = full_name
        if is_superuser is not UNSET:
            field_dict["is_superuser"] = is_superuser
        if is_active is not UNSET:
            field_dict["is_active"] = is_active

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        email = d.pop("email")

        password = d.pop("password")

        def _parse_full_name(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        full_name = _parse_full_name(d.pop("full_name", UNSET))

        is_superuser = d.pop("is_superuser", UNSET)

        is_active = d.pop("is_active", UNSET)

        user_create_in = cls(
            email=email,
            password=password,
            full_name=full_name,
            is_superuser=is_superuser,
            is_active=is_active,
        )

        return user_create_in
