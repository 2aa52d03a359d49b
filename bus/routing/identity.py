"""Who sent an ingress message, by what the broker vouches for, never by what the body says.

RabbitMQ checks the ``user_id`` property of every publish against the user of the
connection (only a user tagged ``impersonator`` may write another's, and ``dvcbus broker
users sync`` gives that tag to no one). So ``user_id`` is the one thing on an ingress
message a publisher cannot forge, and the router derives the sender from it:

- published by the gateway's broker user: the sender is the ``x-dvcbus-sender`` header,
  which the gateway writes after authenticating the request;
- published by the operators' user (``{namespace}-cli``): the same header, which an
  operator's tool writes: a replay keeps the dead letter's (the router wrote it), a payment
  reconciliation names the platform's sender (:func:`claimant`);
- published by any other user: the registry sender whose ``amqp_user`` that user is. A
  ``x-dvcbus-sender`` header from such a publisher is ignored, never trusted.

Anything else has no trusted identity and is refused ``unauthorised``; so is a message
whose ``source`` or ``type`` its sender may not claim (senders.yaml, deny by default).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bus.broker.wire import Header, header_text
from bus.contract.rejections import Reason, Rejection
from bus.ingress.senders import Sender, SendersConfig
from bus.routes.model import compile_values
from bus.routing.reporting import Speaks

_SENDER = Header.SENDER.value
_REPLAY_OF = Header.REPLAY_OF.value


@dataclass(frozen=True, slots=True)
class Identified:
    """A sender the bus established, and how (``via`` is for the refusal's words)."""

    sender_id: str
    sender: Sender
    via: str  # "the gateway" | "broker user sender-hanoi" | "a replay by ..."
    # What it may claim, read once from the sender (the router checks it per message).
    sources: re.Pattern[str] | None = field(default=None, compare=False, repr=False)
    types: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    speaks: Speaks | None = field(default=None, compare=False, repr=False)  # whose dossiers

    @classmethod
    def of(cls, sender_id: str, sender: Sender, via: str) -> Identified:
        return cls(
            sender_id,
            sender,
            via,
            compile_values(sender.sources),
            frozenset(sender.types),
            Speaks(sender),
        )


@dataclass(frozen=True, slots=True)
class Unidentified:
    """No trusted identity: why, naming the publisher (its broker user) where there is one."""

    detail: str


Verdict = Identified | Unidentified


class Identities:
    """The registry as the router reads it: broker users to senders, and who stamps headers."""

    def __init__(
        self, registry: SendersConfig | None, gateway_user: str, operator_user: str
    ) -> None:
        self.registry = registry
        self.gateway_user = gateway_user
        self.operator_user = operator_user
        senders = registry.senders if registry is not None else {}
        # Verdicts built once: the router asks for one per message.
        self._by_user = {
            s.amqp_user: Identified.of(sid, s, f"broker user {s.amqp_user}")
            for sid, s in senders.items()
            if s.amqp_user
        }
        self._by_gateway = {sid: Identified.of(sid, s, "the gateway") for sid, s in senders.items()}

    def identify(self, user_id: Any, headers: dict[str, Any] | None) -> Verdict:
        """The sender of a message with these properties, or why there is none."""
        if self.registry is None:
            return Unidentified("no trusted identity: the router has no senders.yaml")
        if not user_id:
            return Unidentified(
                "no trusted identity: no user_id property (publish with user_id set to "
                "your RabbitMQ user, or through the gateway)"
            )
        user = header_text(user_id)
        if user == self.gateway_user:
            return self._stamped(user, headers, "the gateway")
        if user == self.operator_user:
            via = "a replay by the operators" if headers and headers.get(_REPLAY_OF) else None
            return self._stamped(user, headers, via or "the operators")
        found = self._by_user.get(user)
        if found is None:
            return Unidentified(
                f"no trusted identity: published by user {user[:64]} without a registered sender"
            )
        return found

    def _stamped(self, user: str, headers: dict[str, Any] | None, via: str) -> Verdict:
        stamped = header_text(headers.get(_SENDER)) if headers else ""
        if not stamped:
            return Unidentified(
                f"no trusted identity: published by {via} (user {user}) without {_SENDER}"
            )
        if via == "the gateway":
            known = self._by_gateway.get(stamped)
            if known is not None:
                return known
        sender = self.registry.sender(stamped) if self.registry is not None else None
        if sender is None:
            return Unidentified(
                f"no trusted identity: {via} names sender {stamped[:64]}, "
                "which senders.yaml does not have"
            )
        return Identified.of(stamped, sender, via)


def authorise(verdict: Verdict, type_: str, source: str) -> None:
    """Refuse ``unauthorised`` a message without a trusted identity, or whose sender may not
    claim its ``source`` or send its ``type``; the detail names the sender and the claim."""
    if type(verdict) is Unidentified:
        raise Rejection(Reason.UNAUTHORISED, verdict.detail)
    assert type(verdict) is Identified
    sender, sid = verdict.sender, verdict.sender_id
    if verdict.sources is None or not verdict.sources.match(source):
        raise Rejection(
            Reason.UNAUTHORISED,
            f"sender {sid} may not claim source {source} "
            f"(it may claim: {', '.join(sender.sources)}; identified by {verdict.via})",
        )
    if type_ not in verdict.types:
        raise Rejection(
            Reason.UNAUTHORISED,
            f"sender {sid} may not send {type_} "
            f"(it may send: {', '.join(sender.types)}; identified by {verdict.via})",
        )


def identify_text(verdict: Verdict) -> str:
    """The verdict in one line (``dvcbus routes explain --as``)."""
    if type(verdict) is Identified:
        return f"sender {verdict.sender_id} (identified by {verdict.via})"
    assert type(verdict) is Unidentified
    return verdict.detail


def claimant(registry: SendersConfig | None, type_: str, source: str) -> str | None:
    """The sender an operator's tool acts for when it publishes a message of ``type_`` from
    ``source`` (a reconciled payment: the platform's): the first that may claim both."""
    if registry is None:
        return None
    for sid, sender in registry.senders.items():
        if sender.may_send_type(type_) and sender.may_claim_source(source):
            return sid
    return None


def dead_letter_sender(verdict: Verdict | None) -> str | None:
    """The sender a dead letter records (and a replay by the operators keeps): only one the
    router established; an unidentified message's header is dropped, never passed on."""
    return verdict.sender_id if type(verdict) is Identified else None
