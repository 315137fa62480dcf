"""Request and response shapes for auth and users."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field
from pydantic.json_schema import SkipJsonSchema

from taskhub.fields import NO_NUL_PATTERN, OMITTED, StorableText, StrictModel, text
from taskhub.security import MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS

__all__ = ["StrictModel"]


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


# A password's limit is in bytes (bcrypt reads 72), so the characters' limit documented here
# is the bound that every accepted password meets; the description says the rest.
Password = Annotated[
    str,
    Field(
        min_length=MIN_PASSWORD_CHARS,
        # Checked (in bytes) by _password_rules, with a message that says why.
        json_schema_extra={"maxLength": MAX_PASSWORD_BYTES},
        description=f"{MIN_PASSWORD_CHARS} characters or more, at most "
        f"{MAX_PASSWORD_BYTES} bytes in UTF-8",
    ),
    AfterValidator(_password_rules),
]
Email = Annotated[EmailStr, Field(max_length=320), AfterValidator(_normalize_email)]
FullName = Annotated[str, text(min_length=1, max_length=200), StorableText]


class SignupIn(StrictModel):
    """Public self-signup: never sets `is_superuser`, `is_active` or ids."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"email": "dev@example.com", "password": "Dev-pass-123", "full_name": "Dev"}
            ]
        }
    )

    email: Email
    password: Password
    full_name: FullName | None = None


class UserCreateIn(SignupIn):
    """A site admin creates a user."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"email": "dev@example.com", "password": "Dev-pass-123", "full_name": "Dev"},
                {
                    "email": "ops@example.com",
                    "password": "Ops-pass-123",
                    "full_name": "Ops",
                    "is_superuser": True,
                },
            ]
        }
    )

    is_superuser: bool = False
    is_active: bool = True


class UserUpdateMeIn(StrictModel):
    """Changes to one's own account; a new password needs the current one."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"full_name": "Dev Eloper"},
                {"password": "New-pass-456", "current_password": "Dev-pass-123"},
            ]
        }
    )

    full_name: FullName | None = None
    email: Email | None = None
    password: Password | None = None
    current_password: str | None = Field(
        default=None, max_length=512, description="Required with `password`"
    )


class UserUpdateIn(StrictModel):
    """A site admin's changes to any account."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"is_active": False}, {"full_name": "Dev Eloper"}]}
    )

    full_name: FullName | None = None
    email: Email | None = None
    password: Password | None = None
    is_active: bool | None = None
    is_superuser: bool | None = None


class LoginForm(BaseModel):
    """The OAuth2 password form (RFC 6749 §4.3): `username` is the account's email."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"username": "admin@example.com", "password": "Admin-pass-123"}]
        }
    )

    # A form field is sent or not; it cannot be null.
    grant_type: Annotated[str, Field(pattern="^password$")] | SkipJsonSchema[None] = OMITTED
    # No NUL, like every text the API takes: no account can have one, and no database
    # could look it up (the same 422 on both shapes).
    username: Annotated[
        str, Field(min_length=1, pattern=NO_NUL_PATTERN, description="The account's email")
    ]
    password: Annotated[str, Field(min_length=1, pattern=NO_NUL_PATTERN)]
    scope: str = ""
    client_id: str | SkipJsonSchema[None] = OMITTED
    client_secret: str | SkipJsonSchema[None] = OMITTED


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


class StreamTicketOut(BaseModel):
    """A single-use ticket that opens one event stream (`?ticket=`), for EventSource clients
    that cannot send an Authorization header."""

    ticket: str = Field(description="Pass as `?ticket=` to an event stream; works once")
    expires_in: int = Field(
        ge=1, le=60, description="Seconds until the ticket expires unused (60 at most)"
    )
