"""How long one adapter call may take before the dispatcher abandons it as transient.

One definition, used by the dispatcher and the conformance kit alike, so an adapter is
tested under the limit it will run under in production.
"""

from __future__ import annotations

from adapters.base import TargetSpec

SLACK = 5.0  # seconds beyond the timeouts: pool waits, parsing, retries inside the adapter


def adapter_deadline(target: TargetSpec) -> float:
    """Seconds a ``deliver`` call may take: room for two calls, each within its timeouts.

    An adapter may make two requests for one message (a login or token fetch, then the
    delivery), each allowed its connect and read timeouts; past that (plus some slack) the
    adapter is ignoring its own timeouts, and the call is cut as a transient failure so a
    hung agency never holds a slot for good.
    """
    return 2 * (target.connect_timeout + target.read_timeout) + SLACK
