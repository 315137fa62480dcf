from enum import StrEnum


class WebhookScope(StrEnum):
    ALL = "all"
    OWN = "own"
    PROJECT = "project"

    def __str__(self) -> str:
        return str(self.value)
