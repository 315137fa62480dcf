"""Request and response shapes for auth and users."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field

from taskhub.security import MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS


def _password_rules(value: str) -> str:
    if len(value) < MIN_PASSWORD_CHARS:
        raise ValueError(f"password must be at least {MIN_PASSWORD_CHARS} characters")
    if len(value.encode()) > MAX_PASSWORD_BYTES:
        raise ValueError(
            f"password must be at most {MAX_PASSWORD_BYTES} bytes in UTF-8 "
            "(bcrypt ignores anything longer)"
        )
    return value


def _normalize_email(value: str) -> str:
    return value.strip().lower()


Password = Annotated[str, Field(max_length=512), AfterValidator(_password_rules)]
Email = Annotated[EmailStr, Field(max_length=320), AfterValidator(_normalize_email)]
FullName = Annotated[str, Field(min_length=1, max_length=200)]


class StrictModel(BaseModel):
    """Unknown fields are rejected, so mass assignment fails loudly."""

    model_config = ConfigDict(extra="forbid")


class SignupIn(StrictModel):
    """Public self-signup: never sets `is_superuser`, `is_active` or ids."""

    email: Email
    password: Password
    full_name: FullName | None = None


class UserCreateIn(SignupIn):
    """A site admin creates a user."""

    is_superuser: bool = False
    is_active: bool = True


class UserUpdateMeIn(StrictModel):
    """Changes to one's own account; a new password needs the current one."""

    full_name: FullName | None = None
    email: Email | None = None
    password: Password | None = None
    current_password: str | None = Field(default=None, max_length=512)


class UserUpdateIn(StrictModel):
    """A site admin's changes to any account."""

    full_name: FullName | None = None
    email: Email | None = None
    password: Password | None = None
    is_active: bool | None = None
    is_superuser: bool | None = None


class UserOut(BaseModel):
    """A user as the API shows it; never the hash."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    full_name: str | None
    is_active: bool
    is_superuser: bool
    created_at: datetime


class TokenOut(BaseModel):
    """An OAuth2 bearer token."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105 (the OAuth2 token type, not a secret)
    expires_in: int
