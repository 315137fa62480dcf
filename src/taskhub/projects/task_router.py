"""Routes for /tasks: CRUD, status and assignment shortcuts, the activity log."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request, Response
from pydantic import Field

from taskhub.auth.dependencies import CurrentUser, VerifiedToken
from taskhub.dependencies import MAX_ID, IdPath, SessionDep
from taskhub.errors import (
    BadRequest,
    Forbidden,
    NotFound,
    Unauthorized,
    Unprocessable,
    problem_responses,
)
from taskhub.models import TaskPriority, TaskStatus
from taskhub.pagination import (
    CursorQuery,
    LimitQuery,
    Page,
    PageQuery,
    decode_cursor,
    split_page,
)
from taskhub.projects import tasks as service
from taskhub.projects.permissions import (
    Permission,
    TaskAccess,
    load_project_access,
    task_for,
)
from taskhub.projects.schemas import (
    ActivityOut,
    SearchText,
    TaskCreateIn,
    TaskOut,
    TaskPutIn,
    TaskUpdateIn,
    Timestamp,
)
from taskhub.projects.task_query import TaskFilters, TaskSort, list_tasks
from taskhub.query import documented, query_of
from taskhub.routing import V1, PrefixRouter

router = PrefixRouter(prefix=f"{V1}/tasks", tags=["tasks"])

TaskReader = Annotated[TaskAccess, Depends(task_for(Permission.READ))]
# What a change needs depends on the fields it changes; the service checks that. The row is
# locked so that the activity log records the true old values under concurrent edits.
TaskChanger = Annotated[TaskAccess, Depends(task_for(Permission.READ, for_update=True))]
TaskDeleter = Annotated[TaskAccess, Depends(task_for(Permission.MANAGE_TASKS, for_update=True))]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]

WRITE_ERRORS = problem_responses(Unauthorized, Forbidden, NotFound, Unprocessable)


@router.post("", status_code=201, responses=WRITE_ERRORS)
async def create_task(
    body: TaskCreateIn, user: CurrentUser, session: SessionDep, response: Response
) -> TaskOut:
    """Create a task in a project (member+; assigning someone other than oneself: admin+)."""
    access = await load_project_access(session, user=user, project_id=body.project_id)
    task = await service.create_task(
        session,
        access=access,
        title=body.title,
        description=body.description,
        assignee_id=body.assignee_id,
        status=body.status,
        priority=body.priority,
        due_date=body.due_date,
    )
    response.headers["Location"] = f"/api/v1/tasks/{task.id}"
    return TaskOut.model_validate(task)


class TaskSearch(PageQuery):
    """The query string of GET /tasks (validated in one step: taskhub.query)."""

    project_id: Annotated[int | None, Field(ge=1, le=MAX_ID)] = None
    status: TaskStatus | None = None
    assignee_id: Annotated[int | None, Field(ge=1, le=MAX_ID)] = None
    priority: TaskPriority | None = None
    due_before: Annotated[Timestamp | None, Field(description="Due strictly before")] = None
    due_after: Annotated[Timestamp | None, Field(description="Due strictly after")] = None
    q: Annotated[
        SearchText | None,
        Field(description="Words to find in the title or description, each as a word's start"),
    ] = None
    sort: TaskSort = TaskSort.ID


@router.get(
    "",
    response_model=Page[TaskOut],
    responses=problem_responses(BadRequest, Unauthorized),
    openapi_extra=documented(TaskSearch),
)
async def search_tasks(
    request: Request,
    token: VerifiedToken,
    search: Annotated[TaskSearch, Depends(query_of(TaskSearch))],
) -> Response:
    """Tasks in the caller's projects (site admins: all), filtered, sorted, keyset-paginated."""
    # The page statement reads the account itself: the route read only the token.
    return await list_tasks(
        request.app.state.database.pooled,
        token=token,
        filters=TaskFilters.of(search),
        sort=search.sort,
        limit=search.limit,
        cursor=search.cursor,
    )


@router.get("/{task_id}", responses=problem_responses(Unauthorized, NotFound))
async def read_task(task_access: TaskReader) -> TaskOut:
    """A task in one of the caller's projects."""
    return TaskOut.model_validate(task_access.task)


@router.patch("/{task_id}", responses=WRITE_ERRORS)
async def update_task(body: TaskUpdateIn, task_access: TaskChanger, session: SessionDep) -> TaskOut:
    """Change some fields (member+); an assignee may change just the status of their task."""
    task = await service.update_task(
        session, task_access=task_access, changes=body.model_dump(exclude_unset=True)
    )
    return TaskOut.model_validate(task)


@router.put("/{task_id}", responses=WRITE_ERRORS)
async def replace_task(body: TaskPutIn, task_access: TaskChanger, session: SessionDep) -> TaskOut:
    """Replace every editable field; omitted ones take their creation defaults."""
    if body.project_id is not None and body.project_id != task_access.task.project_id:
        raise Unprocessable(
            "A task cannot be moved to another project",
            errors=[{"loc": ["body", "project_id"], "msg": "cannot change", "type": "immutable"}],
        )
    task = await service.update_task(
        session, task_access=task_access, changes=body.model_dump(exclude={"project_id"})
    )
    return TaskOut.model_validate(task)


@router.delete(
    "/{task_id}",
    status_code=204,
    responses=problem_responses(Unauthorized, Forbidden, NotFound),
)
async def delete_task(task_access: TaskDeleter, session: SessionDep) -> None:
    """Delete a task (admin+)."""
    await service.delete_task(session, task_access=task_access)


@router.post("/{task_id}/status/{status}", responses=WRITE_ERRORS)
async def set_status(status: TaskStatus, task_access: TaskChanger, session: SessionDep) -> TaskOut:
    """Move a task to a status (member+, or anyone the task is assigned to)."""
    task = await service.update_task(session, task_access=task_access, changes={"status": status})
    return TaskOut.model_validate(task)


@router.post("/{task_id}/assign/{user_id}", responses=WRITE_ERRORS)
async def assign(user_id: IdPath, task_access: TaskChanger, session: SessionDep) -> TaskOut:
    """Assign a task to a project member (admin+; a member may assign an open task to themself)."""
    task = await service.update_task(
        session,
        task_access=task_access,
        changes={"assignee_id": user_id},
        loc=["path", "user_id"],
    )
    return TaskOut.model_validate(task)


@router.get("/{task_id}/activity", responses=problem_responses(BadRequest, Unauthorized, NotFound))
async def task_activity(
    task_access: TaskReader,
    session: SessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[ActivityOut]:
    """The task's change log, oldest first: who changed which field, from what, to what."""
    after = decode_cursor(cursor, size=1, kinds=(int,))
    entries = await service.list_activity(
        session,
        task_id=task_access.task.id,
        limit=limit + 1,
        after_id=after[0] if after else None,
    )
    page, next_cursor = split_page(entries, limit, lambda entry: [entry.id])
    return Page[ActivityOut](
        items=[ActivityOut.model_validate(e) for e in page], next_cursor=next_cursor
    )
