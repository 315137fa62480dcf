from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="ReadyChecks")


@_attrs_define
class ReadyChecks:
    """Each dependency's state: `ok`, or why not.

    Attributes:
        database (str): `ok`, or `unavailable: <error>`
        redis (str): `ok`, `unavailable: <error>`, or `not configured (embedded events)`
        migrations (str | Unset): `ok`, or `at <revision>, head is <revision>`; absent when the database is unavailable
    """

    database: str
    redis: str
    migrations: str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        database = self.database

        redis = self.redis

        migrations = self.migrations

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "database": database,
                "redis": redis,
            }
        )
        if migrations is not UNSET:
            field_dict["migrations"] = migrations

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        database = d.pop("database")

        redis = d.pop("redis")

        migrations = d.pop("migrations", UNSET)

        ready_checks = cls(
            database=database,
            redis=redis,
            migrations=migrations,
        )

        ready_checks.additional_properties = d
        return ready_checks

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
