from enum import StrEnum


class TaskSort(StrEnum):
    CREATED_AT = "created_at"
    CREATED_AT_DESC = "-created_at"
    DUE_DATE = "due_date"
    DUE_DATE_DESC = "-due_date"
    ID = "id"
    ID_DESC = "-id"
    PRIORITY = "priority"
    PRIORITY_DESC = "-priority"

    def __str__(self) -> str:
        return str(self.value)
