"""Small factories for tests: users with real tokens from the login endpoint."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import httpx
from fastapi import FastAPI

from taskhub.auth import service as users

_counter = itertools.count(1)
DEFAULT_PASSWORD = "Password-123"


@dataclass
class Actor:
    """A user and the headers that authenticate them."""

    id: int
    email: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        """The Authorization header."""
        return {"Authorization": f"Bearer {self.token}"}


async def make_user(
    app: FastAPI,
    client: httpx.AsyncClient,
    *,
    email: str | None = None,
    password: str = DEFAULT_PASSWORD,
    is_superuser: bool = False,
    is_active: bool = True,
    login: bool = True,
) -> Actor:
    """Create a user in the database, then log in through the real endpoint."""
    email = email or f"user{next(_counter)}@example.com"
    settings = app.state.settings
    async with app.state.sessionmaker() as session, session.begin():
        user = await users.create_user(
            session,
            email=email,
            password=password,
            full_name=email.split("@")[0],
            is_superuser=is_superuser,
            is_active=is_active,
            rounds=settings.bcrypt_rounds,
        )
        user_id = user.id
    token = ""
    if login:
        token = await login_token(client, email=email, password=password)
    return Actor(id=user_id, email=email, password=password, token=token)


async def login_token(client: httpx.AsyncClient, *, email: str, password: str) -> str:
    """Log in with the OAuth2 password form and return the access token."""
    response = await client.post(
        "/api/v1/auth/login/access-token", data={"username": email, "password": password}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token
