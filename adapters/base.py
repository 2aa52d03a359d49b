"""The adapter contract: one canonical message in, one classified outcome out.

An adapter turns a message into one call on one kind of agency system and translates
every library error at its edge into one of three outcomes, so the dispatcher never has
to know what an HTTP status or a SOAP fault is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from adapters.message import Message
    from adapters.testing.standin import Profile


@dataclass(frozen=True, slots=True)
class Delivered:
    """The agency accepted the message; ``reference`` is its own id for it, if it gave one."""

    reference: str | None = None
    detail: str = "delivered"


@dataclass(frozen=True, slots=True)
class TransientFailure:
    """Worth trying again later: the agency was down, slow, overloaded."""

    reason: str


@dataclass(frozen=True, slots=True)
class PermanentFailure:
    """Trying again will not help: the agency refused the message, or its answer is nonsense."""

    reason: str


Outcome = Delivered | TransientFailure | PermanentFailure


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """What an adapter is told about the target it serves (from routes.yaml, defaults applied)."""

    name: str
    agency: str
    adapter: str
    endpoint: str
    connect_timeout: float
    read_timeout: float
    concurrency: int
    options: dict[str, Any] = field(default_factory=dict)
    credentials: dict[str, str] = field(default_factory=dict)  # resolved secrets; never logged


class Adapter:
    """Base class of every adapter kind; subclasses implement :meth:`deliver`.

    Lifecycle: constructed once per target, ``start`` before the first delivery (open
    connection pools, fetch tokens), ``deliver`` concurrently up to the target's
    concurrency, ``close`` at shutdown.
    """

    kind: ClassVar[str] = ""

    def __init__(self, target: TargetSpec) -> None:
        self.target = target

    async def start(self) -> None:
        """Prepare long-lived resources. The default needs none."""

    async def deliver(self, message: Message) -> Outcome:
        """Deliver one message and classify what happened. Must not raise."""
        raise NotImplementedError

    async def close(self) -> None:
        """Release what ``start`` acquired."""

    # --- for stand-ins and the conformance kit (optional) -----------------------------

    @classmethod
    def standin_profile(cls, target: TargetSpec) -> Profile | None:
        """How a stand-in imitates this kind's agency system (an ``adapters.testing.Profile``).

        None (the default) means the stand-in answers JSON ``{"error_code": "0", ...}``.
        Only tests, the demo and the conformance kit call it: a kind imports its fakes
        (``adapters.testing``) inside it, never at module level.
        """
        return None

    @classmethod
    def conformance_example(cls, target: TargetSpec, doc: dict[str, Any]) -> dict[str, Any]:
        """An example message made acceptable to this kind (e.g. signed with the target's
        secret) before the conformance kit delivers it; the default changes nothing."""
        return doc
