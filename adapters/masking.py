"""Masking personal data in text an operator reads: reasons and quoted agency answers.

Adapters quote agencies' answers in failure reasons; those quotes go through the same
safety net as every log line (:func:`bus.observability.masking.mask_text`): id numbers,
phone numbers, tax numbers and e-mail addresses are masked, tokens and passwords too.
"""

from __future__ import annotations

from bus.observability.masking import mask_text

__all__ = ["mask_text"]
