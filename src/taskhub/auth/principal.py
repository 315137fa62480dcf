"""Who is calling: what the services need of the user behind a request."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class Principal(Protocol):
    """The acting user, as the services read it (an ORM `User` is one too)."""

    @property
    def id(self) -> int:
        """The user's id."""
        ...

    @property
    def is_superuser(self) -> bool:
        """Whether the user is a site admin."""
        ...


@dataclass(frozen=True, slots=True)
class Caller:
    """The users row behind a request's token, read on every request.

    A plain snapshot, not an ORM instance (building one costs more than the lookup's own
    Python code); routes that change the account load it into their session themselves.
    """

    id: int
    email: str
    hashed_password: str
    full_name: str | None
    is_active: bool
    is_superuser: bool
    created_at: datetime
    updated_at: datetime
