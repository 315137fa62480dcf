from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.role import Role
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.project_event_payload_changes_type_0 import ProjectEventPayloadChangesType0
    from ..models.task_out import TaskOut


T = TypeVar("T", bound="ProjectEventPayload")


@_attrs_define
class ProjectEventPayload:
    """The payload of a `task.*` or `member.*` event: `task.created` `{task_id, project_id,
    task}`; `task.updated` `{task_id, project_id, changes}`; `task.deleted` `{task_id,
    project_id}`; `member.added` and `member.removed` `{project_id, user_id, role}`;
    `member.role_changed` adds `previous_role`.

        Attributes:
            project_id (int):
            task_id (int | None | Unset):
            task (None | TaskOut | Unset): `task.created`: the new task
            changes (None | ProjectEventPayloadChangesType0 | Unset): `task.updated`: each changed field → `[old, new]`, as
                the API writes them
            user_id (int | None | Unset): `member.*`: the member
            role (None | Role | Unset): `member.*`: the role (`member.removed`: the one it had)
            previous_role (None | Role | Unset): `member.role_changed`
    """

    project_id: int
    task_id: int | None | Unset = UNSET
    task: None | TaskOut | Unset = UNSET
    changes: None | ProjectEventPayloadChangesType0 | Unset = UNSET
    user_id: int | None | Unset = UNSET
    role: None | Role | Unset = UNSET
    previous_role: None | Role | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.project_event_payload_changes_type_0 import ProjectEventPayloadChangesType0  # noqa: PLC0415
        from ..models.task_out import TaskOut  # noqa: PLC0415

        project_id = self.project_id

        task_id: int | None | Unset
        if isinstance(self.task_id, Unset):
            task_id = UNSET
        else:
            task_id = self.task_id

        task: dict[str, Any] | None | Unset
        if isinstance(self.task, Unset):
            task = UNSET
        elif isinstance(self.task, TaskOut):
            task = self.task.to_dict()
        else:
            task = self.task

        changes: dict[str, Any] | None | Unset
        if isinstance(self.changes, Unset):
            changes = UNSET
        elif isinstance(self.changes, ProjectEventPayloadChangesType0):
            changes = self.changes.to_dict()
        else:
            changes = self.changes

        user_id: int | None | Unset
        if isinstance(self.user_id, Unset):
            user_id = UNSET
        else:
            user_id = self.user_id

        role: None | str | Unset
        if isinstance(self.role, Unset):
            role = UNSET
        elif isinstance(self.role, Role):
            role = self.role.value
        else:
            role = self.role

        previous_role: None | str | Unset
        if isinstance(self.previous_role, Unset):
            previous_role = UNSET
        elif isinstance(self.previous_role, Role):
            previous_role = self.previous_role.value
        else:
            previous_role = self.previous_role

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "project_id": project_id,
            }
        )
        if task_id is not UNSET:
            field_dict["task_id"] = task_id
        if task is not UNSET:
            field_dict["task"] = task
        if changes is not UNSET:
            field_dict["changes"] = changes
        if user_id is not UNSET:
            field_dict["user_id"] = user_id
        if role is not UNSET:
            field_dict["role"] = role
        if previous_role is not UNSET:
            field_dict["previous_role"] = previous_role

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.project_event_payload_changes_type_0 import ProjectEventPayloadChangesType0  # noqa: PLC0415
        from ..models.task_out import TaskOut  # noqa: PLC0415

        d = dict(src_dict)
        project_id = d.pop("project_id")

        def _parse_task_id(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        task_id = _parse_task_id(d.pop("task_id", UNSET))

        def _parse_task(data: object) -> None | TaskOut | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                task_type_0 = TaskOut.from_dict(data)

                return task_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | TaskOut | Unset, data)

        task = _parse_task(d.pop("task", UNSET))

        def _parse_changes(data: object) -> None | ProjectEventPayloadChangesType0 | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                changes_type_0 = ProjectEventPayloadChangesType0.from_dict(data)

                return changes_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | ProjectEventPayloadChangesType0 | Unset, data)

        changes = _parse_changes(d.pop("changes", UNSET))

        def _parse_user_id(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        user_id = _parse_user_id(d.pop("user_id", UNSET))

        def _parse_role(data: object) -> None | Role | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                role_type_0 = Role(data)

                return role_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | Role | Unset, data)

        role = _parse_role(d.pop("role", UNSET))

        def _parse_previous_role(data: object) -> None | Role | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                previous_role_type_0 = Role(data)

                return previous_role_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | Role | Unset, data)

        previous_role = _parse_previous_role(d.pop("previous_role", UNSET))

        project_event_payload = cls(
            project_id=project_id,
            task_id=task_id,
            task=task,
            changes=changes,
            user_id=user_id,
            role=role,
            previous_role=previous_role,
        )

        project_event_payload.additional_properties = d
        return project_event_payload

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
