"""The identity of this database, which the Redis keys of its event streams carry too."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from taskhub.db import Base
from taskhub.models._columns import created_at_column


class Deployment(Base):
    """One row: a random id written by the migration that created the table.

    The workers and the API bind each event partition's Redis keys to it
    (`taskhub.messaging.binding`), so that two stacks sharing a REDIS_PREFIX are refused
    instead of handing each other's events to the wrong database.
    """

    __tablename__ = "deployment"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    deployment_id: Mapped[str] = mapped_column(String(36), nullable=False)
    created_at: Mapped[datetime] = created_at_column()
