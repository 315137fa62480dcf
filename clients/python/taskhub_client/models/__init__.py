"""Contains all the data models used in inputs/outputs"""

from .activity_out import ActivityOut
from .delivery_out import DeliveryOut
from .delivery_state import DeliveryState
from .health_out import HealthOut
from .login_form import LoginForm
from .member_out import MemberOut
from .member_role_in import MemberRoleIn
from .order_create_in import OrderCreateIn
from .order_event import OrderEvent
from .order_event_payload import OrderEventPayload
from .order_item_out import OrderItemOut
from .order_line_in import OrderLineIn
from .order_out import OrderOut
from .order_status import OrderStatus
from .orders_events_stream_response_200 import OrdersEventsStreamResponse200
from .page_activity_out import PageActivityOut
from .page_delivery_out import PageDeliveryOut
from .page_member_out import PageMemberOut
from .page_order_out import PageOrderOut
from .page_product_out import PageProductOut
from .page_project_out import PageProjectOut
from .page_task_out import PageTaskOut
from .page_user_out import PageUserOut
from .page_webhook_out import PageWebhookOut
from .problem import Problem
from .product_create_in import ProductCreateIn
from .product_out import ProductOut
from .product_update_in import ProductUpdateIn
from .project_create_in import ProjectCreateIn
from .project_event import ProjectEvent
from .project_event_payload import ProjectEventPayload
from .project_event_payload_changes_type_0 import ProjectEventPayloadChangesType0
from .project_out import ProjectOut
from .project_put_in import ProjectPutIn
from .project_update_in import ProjectUpdateIn
from .project_webhook_create_in import ProjectWebhookCreateIn
from .project_webhook_update_in import ProjectWebhookUpdateIn
from .projects_events_stream_response_200 import ProjectsEventsStreamResponse200
from .readiness_problem import ReadinessProblem
from .ready_checks import ReadyChecks
from .ready_out import ReadyOut
from .role import Role
from .signup_in import SignupIn
from .stream_ticket_out import StreamTicketOut
from .task_create_in import TaskCreateIn
from .task_out import TaskOut
from .task_priority import TaskPriority
from .task_put_in import TaskPutIn
from .task_sort import TaskSort
from .task_status import TaskStatus
from .task_update_in import TaskUpdateIn
from .token_out import TokenOut
from .transfer_ownership_in import TransferOwnershipIn
from .transition_problem import TransitionProblem
from .user_create_in import UserCreateIn
from .user_out import UserOut
from .user_update_in import UserUpdateIn
from .user_update_me_in import UserUpdateMeIn
from .validation_issue import ValidationIssue
from .validation_problem import ValidationProblem
from .webhook_create_in import WebhookCreateIn
from .webhook_create_in_scope import WebhookCreateInScope
from .webhook_out import WebhookOut
from .webhook_scope import WebhookScope
from .webhook_secret_out import WebhookSecretOut
from .webhook_update_in import WebhookUpdateIn
from .webhook_update_in_scope import WebhookUpdateInScope

__all__ = (
    "ActivityOut",
    "DeliveryOut",
    "DeliveryState",
    "HealthOut",
    "LoginForm",
    "MemberOut",
    "MemberRoleIn",
    "OrderCreateIn",
    "OrderEvent",
    "OrderEventPayload",
    "OrderItemOut",
    "OrderLineIn",
    "OrderOut",
    "OrdersEventsStreamResponse200",
    "OrderStatus",
    "PageActivityOut",
    "PageDeliveryOut",
    "PageMemberOut",
    "PageOrderOut",
    "PageProductOut",
    "PageProjectOut",
    "PageTaskOut",
    "PageUserOut",
    "PageWebhookOut",
    "Problem",
    "ProductCreateIn",
    "ProductOut",
    "ProductUpdateIn",
    "ProjectCreateIn",
    "ProjectEvent",
    "ProjectEventPayload",
    "ProjectEventPayloadChangesType0",
    "ProjectOut",
    "ProjectPutIn",
    "ProjectsEventsStreamResponse200",
    "ProjectUpdateIn",
    "ProjectWebhookCreateIn",
    "ProjectWebhookUpdateIn",
    "ReadinessProblem",
    "ReadyChecks",
    "ReadyOut",
    "Role",
    "SignupIn",
    "StreamTicketOut",
    "TaskCreateIn",
    "TaskOut",
    "TaskPriority",
    "TaskPutIn",
    "TaskSort",
    "TaskStatus",
    "TaskUpdateIn",
    "TokenOut",
    "TransferOwnershipIn",
    "TransitionProblem",
    "UserCreateIn",
    "UserOut",
    "UserUpdateIn",
    "UserUpdateMeIn",
    "ValidationIssue",
    "ValidationProblem",
    "WebhookCreateIn",
    "WebhookCreateInScope",
    "WebhookOut",
    "WebhookScope",
    "WebhookSecretOut",
    "WebhookUpdateIn",
    "WebhookUpdateInScope",
)
