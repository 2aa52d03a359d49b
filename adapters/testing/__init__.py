"""The SDK's test kit: stand-in agency systems and fake agency APIs; never used in production.

A plug-in's own tests deliver to a :class:`StandinThread` (a real HTTP or SOAP server on
loopback) and read what it received; a :class:`Behaviour` makes it misbehave (an
:class:`Act`: a fault, a redirect, garbage, a hostile, huge or dripping answer), a
:class:`Profile` makes it answer like one kind of system. Part of the SDK surface
(docs/adapters.md).
"""

from __future__ import annotations

from adapters.testing.standin import (
    BILLION_LAUGHS,
    EXTERNAL_ENTITY,
    GARBAGE,
    REDIRECT_PATH,
    REDIRECT_PII,
    Act,
    Behaviour,
    Endpoint,
    Profile,
    Received,
    Request,
    StandinServer,
    StandinState,
    StandinThread,
    soap_fault,
)

__all__ = [
    "BILLION_LAUGHS",
    "EXTERNAL_ENTITY",
    "GARBAGE",
    "REDIRECT_PATH",
    "REDIRECT_PII",
    "Act",
    "Behaviour",
    "Endpoint",
    "Profile",
    "Received",
    "Request",
    "StandinServer",
    "StandinState",
    "StandinThread",
    "soap_fault",
]
