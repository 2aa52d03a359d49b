"""Answer codes: which code in an agency's answer means delivered, try later, or refused.

REST agencies put it in a JSON field (``response.error_code``), SOAP agencies in an element
(``response.result_code``); both declare the same two lists, ``success`` and ``transient``
(anything else is permanent), read by this one model and judged by this one matcher, so
the two kinds cannot drift apart. Codes are compared as text: ``0`` and ``"0"`` are the same.

A REST target that declares no rule is not taken at its HTTP status alone: portal-style APIs
answer HTTP 200 with ``{"error_code": "-1", "message": "Lỗi hệ thống"}``. A top-level field
named as such APIs name their code (:data:`UNDECLARED_CODE_FIELDS`) that is present and not
zero is a refusal (:func:`undeclared_failure`); declaring a rule replaces this guess.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator

from adapters.base import PermanentFailure, TransientFailure
from adapters.masking import mask_text
from adapters.options import AdapterOptions

__all__ = [
    "UNDECLARED_CODE_FIELDS",
    "UNDECLARED_MESSAGE_FIELDS",
    "CodeRule",
    "ErrorCodeRule",
    "ResultCodeRule",
    "Verdict",
    "code_text",
    "undeclared_failure",
]

# Where Vietnamese portal and agency APIs put their answer code and its text, looked at (top
# level only, in this order) when a REST target declares no ``response.error_code``.
UNDECLARED_CODE_FIELDS = ("error_code", "errorCode", "ma_loi", "maLoi", "MaLoi")
UNDECLARED_MESSAGE_FIELDS = ("message", "msg", "thong_bao", "ThongBao", "mo_ta", "MoTa")


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


def undeclared_failure(doc: Any) -> PermanentFailure | None:
    """The refusal an answer states without a declared rule, or None if it states none.

    The first of :data:`UNDECLARED_CODE_FIELDS` present at the top level decides: absent,
    null, empty, or all zeros (``0``, ``"0"``, ``"00"``, ``"000"``) is no refusal; any other
    code is permanent (an undeclared code cannot be known to be "try later"), quoting the
    agency's text from :data:`UNDECLARED_MESSAGE_FIELDS`, masked.
    """
    if not isinstance(doc, dict):
        return None
    for name in UNDECLARED_CODE_FIELDS:
        if name in doc:
            code = code_text(doc[name])
            if code is None or not code.strip().strip("0"):
                return None
            says = next(
                (m for f in UNDECLARED_MESSAGE_FIELDS if isinstance(m := doc.get(f), str) and m),
                "",
            )
            text = repr(mask_text(" ".join(says.split()))[:160]) if says else ""
            return PermanentFailure(
                f"agency {name} {mask_text(code.strip()[:40])} (no declared success rule)"
                + (f": {text}" if text else "")
            )
    return None
