"""Answer codes: which code in an agency's answer means delivered, try later, or refused.

REST agencies put it in a JSON field (``response.error_code``), SOAP agencies in an element
(``response.result_code``); both declare the same two lists, ``success`` and ``transient``
(anything else is permanent), read by this one model and judged by this one matcher, so
the two kinds cannot drift apart. Codes are compared as text: ``0`` and ``"0"`` are the same.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator

from adapters.base import PermanentFailure, TransientFailure
from adapters.options import AdapterOptions

__all__ = ["CodeRule", "ErrorCodeRule", "ResultCodeRule", "Verdict", "code_text"]


class Verdict(StrEnum):
    """What an answer code means for the bus."""

    DELIVERED = "delivered"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


class CodeRule(AdapterOptions):
    """The codes an agency declares: ``success`` delivered, ``transient`` later, others refused."""

    success: list[str] = Field(default_factory=lambda: ["0"])
    transient: list[str] = Field(default_factory=list)

    @field_validator("success", "transient", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return [str(v) for v in value] if isinstance(value, list | tuple) else value

    def verdict(self, code: str) -> Verdict:
        """What ``code`` (as text, see :func:`code_text`) means; success is looked at first."""
        if self.is_success(code):
            return Verdict.DELIVERED
        if self.is_transient(code):
            return Verdict.TRANSIENT
        return Verdict.PERMANENT

    def is_success(self, code: str | None) -> bool:
        return code is not None and code in self.success

    def is_transient(self, code: str | None) -> bool:
        return code is not None and code in self.transient

    def failure(self, code: str, reason: str) -> TransientFailure | PermanentFailure:
        """The failure a code that is not a success means, with ``reason`` for operators."""
        if self.verdict(code) is Verdict.TRANSIENT:
            return TransientFailure(reason)
        return PermanentFailure(reason)


class ErrorCodeRule(CodeRule):
    """REST: a JSON field in the answer that says whether the agency accepted the message."""

    field: str = "error_code"
    message_field: str | None = "message"


class ResultCodeRule(CodeRule):
    """SOAP: an element of the answer that says whether the agency accepted the message."""

    element: str
    message_element: str | None = None


def code_text(value: Any) -> str | None:
    """An answer code as text: a string or an integer (never a boolean); else no code."""
    if isinstance(value, str | int) and not isinstance(value, bool):
        return str(value)
    return None
