from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.order_status import OrderStatus
from ..types import UNSET, Unset

T = TypeVar("T", bound="TransitionProblem")


@_attrs_define
class TransitionProblem:
    """The order's state machine refused the transition (409).

    Attributes:
        type_ (str): A URI naming the kind of problem
        title (str): The kind of problem, in words
        status (int): The HTTP status code
        detail (str): What went wrong with this request
        current_status (OrderStatus): The order state machine of design §3.
        instance (str | Unset): The request's path
    """

    type_: str
    title: str
    status: int
    detail: str
    current_status: OrderStatus
    instance: str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        type_ = self.type_

        title = self.title

        status = self.status

        detail = self.detail

        current_status = self.current_status.value

        instance = self.instance

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "type": type_,
                "title": title,
                "status": status,
                "detail": detail,
                "current_status": current_status,
            }
        )
        if instance is not UNSET:
            field_dict["instance"] = instance

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        type_ = d.pop("type")

        title = d.pop("title")

        status = d.pop("status")

        detail = d.pop("detail")

        current_status = OrderStatus(d.pop("current_status"))

        instance = d.pop("instance", UNSET)

        transition_problem = cls(
            type_=type_,
            title=title,
            status=status,
            detail=detail,
            current_status=current_status,
            instance=instance,
        )

        transition_problem.additional_properties = d
        return transition_problem

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
