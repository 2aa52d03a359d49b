"""Adapter configuration: a target's ``options:`` read into a typed model, errors naming the option.

Each adapter kind declares a pydantic model of its options; :func:`parse_options` validates
the target's ``options`` against it when the adapter is built, so a typo stops the target at
start (``dispatcher.target_disabled``, ``dvcbus adapters test``) with the option's name,
never in the middle of traffic. Values are never repeated in the error (an operator may
have pasted a secret into the wrong key).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from adapters.base import TargetSpec


class AdapterConfigError(ValueError):
    """A target's options or credentials do not fit its adapter kind."""


class AdapterOptions(BaseModel):
    """Base of every kind's options model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


M = TypeVar("M", bound=BaseModel)


def parse_options(model: type[M], target: TargetSpec, defaults: dict[str, Any] | None = None) -> M:
    """``target.options`` (over a kind's ``defaults``) as ``model``.

    Raises :class:`AdapterConfigError` naming each wrong option.
    """
    options = merge_options(defaults or {}, target.options or {})
    try:
        return model.model_validate(options)
    except ValidationError as exc:
        problems = "; ".join(option_problem(error) for error in exc.errors())
        raise AdapterConfigError(
            f"target {target.name!r} (adapter {target.adapter}): {problems}"
        ) from None


# Keys whose value is a whole field mapping: a target that gives one replaces the default.
WHOLE = frozenset({"body", "parameters"})


def merge_options(defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """A kind's default options overlaid with a target's.

    Nested tables merge key by key (a target may change one rule of ``response``), except
    field mappings (``body``, ``parameters``), which a target replaces as a whole.
    """
    result = copy.deepcopy(defaults)
    for key, value in (given or {}).items():
        if key not in WHOLE and isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge_options(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def option_problem(error: Any) -> str:
    """One pydantic error of an options model as an operator reads it: the option, then why."""
    parts = list(error.get("loc", ()))
    # pydantic puts the chosen member of a tagged union in the location (auth.oauth2.x):
    # an operator wrote auth.x.
    parts = [
        p for i, p in enumerate(parts) if not (i and parts[i - 1] == "auth" and p in _AUTH_TAGS)
    ]
    loc = ".".join(str(part) for part in parts if not _is_union_tag(part))
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if error.get("type") == "extra_forbidden":
        message = "unknown option (check its spelling and docs/adapters.md)"
    return f"option {loc or '(options)'!r}: {message}"


_AUTH_TAGS = frozenset({"bearer", "basic", "oauth2", "session"})


def _is_union_tag(part: Any) -> bool:
    # pydantic adds the chosen member of a tagged union to error locations ("oauth2", ...).
    return isinstance(part, str) and part.startswith("function-")


def require_credentials(target: TargetSpec, *keys: str, why: str) -> None:
    """Refuse a target that lacks credentials a configured feature needs (names, not values)."""
    missing = [key for key in keys if not target.credentials.get(key)]
    if missing:
        raise AdapterConfigError(
            f"target {target.name!r} (adapter {target.adapter}): {why} needs "
            f"credentials {', '.join(missing)} (env:NAME or file:/path)"
        )


def placeholder_credentials(target: TargetSpec) -> TargetSpec:
    """``target`` with a harmless stand-in value for every credential (and username/password).

    Used to describe a target's stand-in without its secrets: the stand-in never sees them.
    """
    creds = {key: f"standin-{key}" for key in target.credentials}
    for key in ("username", "password"):
        creds.setdefault(key, f"standin-{key}")
    return dataclasses.replace(target, credentials=creds)
