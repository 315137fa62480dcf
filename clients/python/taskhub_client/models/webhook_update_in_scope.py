from enum import StrEnum


class WebhookUpdateInScope(StrEnum):
    ALL = "all"
    OWN = "own"

    def __str__(self) -> str:
        return str(self.value)
