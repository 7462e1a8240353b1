"""The functions a cross-functional review draws its participants from."""

from enum import StrEnum


class ReviewFunction(StrEnum):
    ENGINEERING = "engineering"
    OPERATIONS = "operations"
    PRODUCT = "product"
    SECURITY = "security"
    SUPPORT = "support"
