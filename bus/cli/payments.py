"""``dvcbus payments``: what is pending, and reconciliation with the platform's status query."""

from __future__ import annotations

import time

import click
import orjson
from rich.table import Table

from bus.cli.common import Ctx, cell, console, load_with_store


@click.group()
def payments() -> None:
    """Payments still pending, and their reconciliation with the payment platform."""


def _age(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours < 48 else f"{hours // 24}d{hours % 24:02d}h"


@payments.command("pending")
@click.option("--older-than", help="Only those pending longer than this (15m, 2h).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_obj
def payments_pending(obj: Ctx, older_than: str | None, as_json: bool) -> None:
    """List payments whose only result so far is pending, oldest first, and since when."""
    from bus.observability.trace import vn_time
    from bus.routes.durations import parse_duration

    _, store = load_with_store(obj)
    now = time.time()
    try:
        before = now - parse_duration(older_than) if older_than else None
        pending = store.pending_payments(before)
    finally:
        store.close()
    if as_json:
        for p in pending:
            line = {
                "reference": p.reference,
                "since": vn_time(p.since),
                "waiting_seconds": round(now - p.since),
                "message_id": p.message_id,
                "targets": list(p.targets),
            }
            click.echo(orjson.dumps(line).decode())
        return
    if not pending:
        console.print("no payment is pending")
        return
    table = Table(title=f"{len(pending)} payment(s) pending (Vietnam time, UTC+07:00)")
    for column in ("reference", "pending since", "waiting", "message", "at targets"):
        table.add_column(column)
    for p in pending:
        table.add_row(
            cell(p.reference),
            vn_time(p.since),
            _age(now - p.since),
            cell(p.message_id),
            cell(", ".join(p.targets)),
        )
    console.print(table)


@payments.command("reconcile")
@click.option("--older-than", help="Query those pending longer than this (default: routes.yaml).")
@click.option("--every", help="Run a pass at this interval until stopped (e.g. 5m).")
@click.pass_obj
def payments_reconcile(obj: Ctx, older_than: str | None, every: str | None) -> None:
    """Ask the payment platform about pending payments; publish each final result.

    A final answer is published to the ingress as the platform's confirmation, so the
    router verifies its checksum before routing it (routes.yaml payments.reconciliation).
    """
    from bus.cli.as_sender import send_for_claimants
    from bus.recovery.payment_reconciliation import Reconciler
    from bus.routes.durations import parse_duration
    from bus.routing.payment_checksum import PaymentChecksum

    loaded, store = load_with_store(obj)
    config = loaded.routes.payments.reconciliation
    if config is None:
        store.close()
        raise click.ClickException(
            f"{loaded.settings.routes_file}: no `payments: reconciliation:` (status_query, after)"
        )

    def publish(bodies: list[bytes]) -> list[bool]:
        # as the platform's sender: the router checks identities (docs/ingress.md)
        return [r.ok for r in send_for_claimants(loaded, bodies)]

    checksum = PaymentChecksum.from_config(loaded.routes.payments)
    reconciler = Reconciler(store, checksum, config, publish)
    after = parse_duration(older_than) if older_than else None
    interval = parse_duration(every) if every else None
    try:
        while True:
            verdicts = reconciler.run_once(after=after)
            for v in verdicts:
                console.print(
                    f"{v.reference}: {v.outcome}" + (f" ({v.message_id})" if v.message_id else ""),
                    highlight=False,
                )
            console.print(f"reconciled {len(verdicts)} pending payment(s)", highlight=False)
            if interval is None:
                return
            time.sleep(interval)
    finally:
        store.close()


COMMANDS = [payments]
