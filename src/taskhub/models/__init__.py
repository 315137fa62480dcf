"""Every ORM model, one module per aggregate."""

from taskhub.models.deployment import Deployment
from taskhub.models.idempotency import IdempotencyKey
from taskhub.models.order import Order, OrderItem, OrderStatus, Reservation, ReservationState
from taskhub.models.outbox import OutboxEvent, ProcessedEvent
from taskhub.models.product import MovementReason, Product, StockMovement
from taskhub.models.project import Project, ProjectMember, Role
from taskhub.models.stream_ticket import StreamTicket
from taskhub.models.task import Task, TaskActivity, TaskPriority, TaskStatus
from taskhub.models.user import RevokedToken, User
from taskhub.models.webhook import DeliveryState, WebhookDelivery, WebhookEndpoint, WebhookScope

__all__ = [
    "DeliveryState",
    "Deployment",
    "IdempotencyKey",
    "MovementReason",
    "Order",
    "OrderItem",
    "OrderStatus",
    "OutboxEvent",
    "ProcessedEvent",
    "Product",
    "Project",
    "ProjectMember",
    "Reservation",
    "RevokedToken",
    "ReservationState",
    "Role",
    "StockMovement",
    "StreamTicket",
    "Task",
    "TaskActivity",
    "TaskPriority",
    "TaskStatus",
    "User",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookScope",
]
