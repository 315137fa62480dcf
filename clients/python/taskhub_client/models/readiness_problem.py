from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.ready_checks import ReadyChecks


T = TypeVar("T", bound="ReadinessProblem")


@_attrs_define
class ReadinessProblem:
    """Not ready: `checks` says which dependency is not.

    Attributes:
        type_ (str): A URI naming the kind of problem
        title (str): The kind of problem, in words
        status (int): The HTTP status code
        detail (str): What went wrong with this request
        checks (ReadyChecks): Each dependency's state: `ok`, or why not.
        instance (str | Unset): The request's path
    """

    type_: str
    title: str
    status: int
    detail: str
    checks: ReadyChecks
    instance: str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        type_ = self.type_

        title = self.title

        status = self.status

        detail = self.detail

        checks = self.checks.to_dict()

        instance = self.instance

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "type": type_,
                "title": title,
                "status": status,
                "detail": detail,
                "checks": checks,
            }
        )
        if instance is not UNSET:
            field_dict["instance"] = instance

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.ready_checks import ReadyChecks  # noqa: PLC0415

        d = dict(src_dict)
        type_ = d.pop("type")

        title = d.pop("title")

        status = d.pop("status")

        detail = d.pop("detail")

        checks = ReadyChecks.from_dict(d.pop("checks"))

        instance = d.pop("instance", UNSET)

        readiness_problem = cls(
            type_=type_,
            title=title,
            status=status,
            detail=detail,
            checks=checks,
            instance=instance,
        )

        readiness_problem.additional_properties = d
        return readiness_problem

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
