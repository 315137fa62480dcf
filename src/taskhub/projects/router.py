"""Routes for /projects and their members."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Response

from taskhub.auth.dependencies import CurrentUser
from taskhub.dependencies import IdPath, SessionDep
from taskhub.errors import (
    Conflict,
    Forbidden,
    NotFound,
    Unauthorized,
    Unprocessable,
    problem_responses,
)
from taskhub.pagination import (
    CursorQuery,
    LimitQuery,
    Page,
    decode_cursor,
    split_page,
)
from taskhub.projects import service
from taskhub.projects.permissions import Permission, ProjectAccess, project_for
from taskhub.projects.schemas import (
    MemberOut,
    MemberRoleIn,
    ProjectCreateIn,
    ProjectOut,
    ProjectPutIn,
    ProjectUpdateIn,
    TransferOwnershipIn,
)
from taskhub.routing import V1, PrefixRouter

router = PrefixRouter(prefix=f"{V1}/projects", tags=["projects"])

ProjectReader = Annotated[ProjectAccess, Depends(project_for(Permission.READ))]
ProjectManager = Annotated[ProjectAccess, Depends(project_for(Permission.MANAGE_PROJECT))]
ProjectOwner = Annotated[ProjectAccess, Depends(project_for(Permission.OWN))]
# Membership changes lock the project row, so that concurrent changes are serialized.
MembershipLeaver = Annotated[ProjectAccess, Depends(project_for(Permission.READ, for_update=True))]
MembershipManager = Annotated[
    ProjectAccess, Depends(project_for(Permission.MANAGE_PROJECT, for_update=True))
]
OwnershipOwner = Annotated[ProjectAccess, Depends(project_for(Permission.OWN, for_update=True))]

READ_ERRORS = problem_responses(Unauthorized, NotFound)
WRITE_ERRORS = problem_responses(Unauthorized, Forbidden, NotFound, Unprocessable)
MEMBER_ERRORS = problem_responses(Unauthorized, Forbidden, NotFound, Conflict, Unprocessable)


def project_out(access: ProjectAccess) -> ProjectOut:
    """The project as the caller sees it."""
    project = access.project
    return ProjectOut(
        id=project.id,
        title=project.title,
        description=project.description,
        owner_id=access.owner_id,
        my_role=access.role,
        created_at=project.created_at,
        updated_at=project.updated_at,
    )


@router.post("", status_code=201, responses=problem_responses(Unauthorized))
async def create_project(
    body: ProjectCreateIn, user: CurrentUser, session: SessionDep, response: Response
) -> ProjectOut:
    """Create a project; the caller becomes its owner."""
    access = await service.create_project(
        session, user=user, title=body.title, description=body.description
    )
    response.headers["Location"] = f"/api/v1/projects/{access.project_id}"
    return project_out(access)


@router.get("", responses=problem_responses(Unauthorized))
async def list_projects(
    user: CurrentUser,
    session: SessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[ProjectOut]:
    """The projects the caller is a member of (site admins: every project), by id."""
    after = decode_cursor(cursor, size=1, kinds=(int,))
    rows = await service.list_projects(
        session, user=user, limit=limit + 1, after_id=after[0] if after else None
    )
    page, next_cursor = split_page(rows, limit, lambda row: [row.id])
    return Page[ProjectOut].model_validate(
        {"items": [row._asdict() for row in page], "next_cursor": next_cursor}
    )


@router.get("/{project_id}", responses=READ_ERRORS)
async def read_project(access: ProjectReader) -> ProjectOut:
    """A project the caller is a member of."""
    return project_out(access)


@router.patch("/{project_id}", responses=WRITE_ERRORS)
async def update_project(
    body: ProjectUpdateIn, access: ProjectManager, session: SessionDep
) -> ProjectOut:
    """Change the project's title or description (admin+)."""
    changes = body.model_dump(exclude_unset=True)
    return project_out(await service.update_project(session, access=access, changes=changes))


@router.put("/{project_id}", responses=WRITE_ERRORS)
async def replace_project(
    body: ProjectPutIn, access: ProjectManager, session: SessionDep
) -> ProjectOut:
    """Replace the project's editable fields; an omitted description is cleared (admin+)."""
    return project_out(
        await service.update_project(session, access=access, changes=body.model_dump())
    )


@router.delete(
    "/{project_id}",
    status_code=204,
    responses=problem_responses(Unauthorized, Forbidden, NotFound),
)
async def delete_project(access: ProjectOwner, session: SessionDep) -> None:
    """Delete the project with its members and tasks (owner or site admin)."""
    await service.delete_project(session, access=access)


@router.post("/{project_id}/transfer-ownership", responses=MEMBER_ERRORS)
async def transfer_ownership(
    body: TransferOwnershipIn, access: OwnershipOwner, session: SessionDep
) -> ProjectOut:
    """Hand the project to an existing member; the previous owner becomes an admin."""
    await service.transfer_ownership(
        session, access=access, user_id=body.user_id, loc=["body", "user_id"]
    )
    return project_out(access)


@router.get("/{project_id}/members", responses=READ_ERRORS)
async def list_members(
    access: ProjectReader,
    session: SessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[MemberOut]:
    """The project's members, by user id."""
    after = decode_cursor(cursor, size=1, kinds=(int,))
    rows = await service.list_members(
        session,
        project_id=access.project_id,
        limit=limit + 1,
        after_user_id=after[0] if after else None,
    )
    page, next_cursor = split_page(rows, limit, lambda row: [row.user_id])
    return Page[MemberOut].model_validate(
        {"items": [row._asdict() for row in page], "next_cursor": next_cursor}
    )


@router.get("/{project_id}/members/{user_id}", responses=READ_ERRORS)
async def read_member(user_id: IdPath, access: ProjectReader, session: SessionDep) -> MemberOut:
    """One member of the project."""
    row = await service.get_member(session, project_id=access.project_id, user_id=user_id)
    return MemberOut.model_validate(row._asdict())


@router.put(
    "/{project_id}/members/{user_id}",
    responses={201: {"model": MemberOut, "description": "Added as a new member"}, **MEMBER_ERRORS},
)
async def put_member(
    user_id: IdPath,
    body: MemberRoleIn,
    access: MembershipManager,
    session: SessionDep,
    response: Response,
) -> MemberOut:
    """Add a member (201) or change their role (200); granting `owner` transfers ownership.

    Admins and owners may only touch members, and grant roles, below their own rank.
    """
    created = await service.set_member_role(session, access=access, user_id=user_id, role=body.role)
    if created:
        response.status_code = 201
        response.headers["Location"] = f"/api/v1/projects/{access.project_id}/members/{user_id}"
    row = await service.get_member(session, project_id=access.project_id, user_id=user_id)
    return MemberOut.model_validate(row._asdict())


@router.delete(
    "/{project_id}/members/{user_id}",
    status_code=204,
    responses=problem_responses(Unauthorized, Forbidden, NotFound, Conflict),
)
async def delete_member(user_id: IdPath, access: MembershipLeaver, session: SessionDep) -> None:
    """Remove a member below one's rank (admin+), or leave the project (anyone but the owner)."""
    await service.remove_member(session, access=access, user_id=user_id)
