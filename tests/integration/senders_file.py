"""The senders.yaml the gateway, identity and status tests write: the portal's entry is in most
of them (it sends ``dossier.submitted`` from ``000.00.00.G22/portal``) and only its credentials
differ, so the entry is written here once; so is Hà Nội's system, which reports statuses."""

from __future__ import annotations

HEAD = "version: 1\nsenders:\n"


def portal(*lines: str) -> str:
    """The portal's entry, indented under ``senders:``, ending with ``lines`` (its ``auth``,
    ``amqp_user``, ``rate_limit``…; a nested line starts with two more spaces)."""
    return (
        "  portal:\n"
        "    agencies: [000.00.00.G22]\n"
        "    sources: [000.00.00.G22/portal]\n"
        "    types: [dossier.submitted]\n" + "".join(f"    {line}\n" for line in lines)
    )


def hanoi_igate(amqp_user: str) -> str:
    """Hà Nội's one-stop system (iGate), indented under ``senders:``: it reports status changes
    for its own agency 000.00.00.H26, publishing as the broker user ``amqp_user``."""
    return (
        "  hanoi-igate:\n"
        "    agencies: [000.00.00.H26]\n"
        "    sources: [000.00.00.H26, 000.00.00.H26/*]\n"
        "    types: [dossier.status_changed]\n"
        f"    amqp_user: {amqp_user}\n"
    )
