from enum import StrEnum


class OrderStatus(StrEnum):
    CANCELLED = "CANCELLED"
    CONFIRMED = "CONFIRMED"
    FAILED = "FAILED"
    PAID = "PAID"
    PENDING = "PENDING"
    RESERVED = "RESERVED"

    def __str__(self) -> str:
        return str(self.value)
