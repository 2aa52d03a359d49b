"""What an operator types — dead letters, targets, trace, audit verify — on a real run."""

from __future__ import annotations

import subprocess
import sys

import orjson

from bus.standin import Behaviour
from bus.store import DELIVERED, PURGED, REPLAYED, DeadFilter
from tests.integration.harness import ROOT, collect_dead, send, wait_until
from tests.integration.test_recoverability import example, fast_retries


def dvcbus(bus, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bus.cli", *args],
        env=bus.env(COLUMNS="250"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        input=input,
    )


def test_dead_letters_can_be_listed_shown_replayed_once_and_purged(make_bus) -> None:
    bus = make_bus(fast_retries)
    bus.start_router()
    bus.start_dispatcher()
    bus.standins.program("hanoi", Behaviour(status=400))
    refused = example("dossier.submitted.v1/valid/citizen-hanoi-online.json")
    invalid = example("dossier.submitted.v1/valid/citizen-hanoi-online.json", procedure_code="9")
    send(bus.names, [orjson.dumps(refused), orjson.dumps(invalid)])
    dead = {d.reason: d for d in collect_dead(bus.store, 2)}
    id_number = refused["payload"]["applicant"]["id_number"]
    phone = refused["payload"]["applicant"]["phone"]

    listed = dvcbus(bus, "dead", "list")
    assert listed.returncode == 0, listed.stderr
    assert "rejected" in listed.stdout and "invalid" in listed.stdout and "hanoi" in listed.stdout

    shown = dvcbus(bus, "dead", "show", str(dead["rejected"].id))
    assert shown.returncode == 0, shown.stderr
    assert "HTTP 400" in shown.stdout and "attempt 1" in shown.stdout
    assert id_number not in shown.stdout and phone not in shown.stdout  # masked
    assert refused["payload"]["dossier_no"] in shown.stdout

    dry = dvcbus(bus, "dead", "replay", "--id", str(dead["rejected"].id), "--dry-run")
    assert "would replay" in dry.stdout and "target hanoi" in dry.stdout
    assert bus.store.dead_letter(dead["rejected"].id).state == "parked"

    bus.standins.heal("hanoi")  # the agency fixed its side
    replayed = dvcbus(bus, "dead", "replay", "--id", str(dead["rejected"].id))
    assert replayed.returncode == 0, replayed.stderr
    assert "1 replayed" in replayed.stdout
    assert wait_until(
        lambda: ("hanoi", DELIVERED) in {(t, o) for _, t, o in bus.store.outcomes([refused["id"]])},
        20,
    )
    again = dvcbus(bus, "dead", "replay", "--id", str(dead["rejected"].id))
    assert "0 replayed, 1 skipped" in again.stdout  # a replay happens once
    assert "already replayed" in again.stdout
    letter = bus.store.dead_letter(dead["rejected"].id)
    assert letter.state == REPLAYED and letter.actions[0]["action"] == "replay"

    refuse = dvcbus(bus, "dead", "purge", "--reason", "invalid", input="n\n")
    assert refuse.returncode != 0  # asked, and the operator said no
    purged = dvcbus(bus, "dead", "purge", "--reason", "invalid", "--yes")
    assert "1 purged" in purged.stdout
    assert bus.store.dead_letter(dead["invalid"].id).state == PURGED
    assert bus.store.dead_letters(DeadFilter()) == []  # nothing parked is left
    everything = dvcbus(bus, "dead", "list", "--all")
    assert "(purged)" in everything.stdout and "(replayed)" in everything.stdout


def test_targets_trace_and_audit_verify_tell_the_story(make_bus) -> None:
    bus = make_bus(fast_retries)
    bus.start_router()
    bus.start_dispatcher()
    bus.standins.program("hcmc", Behaviour(status=503))
    dossier = example("dossier.submitted.v1/valid/citizen-hanoi-online.json")
    send(bus.names, [orjson.dumps(dossier)])
    hcmc = example("dossier.submitted.v1/valid/organisation-hcmc-direct.json")
    send(bus.names, [orjson.dumps(hcmc)] * 1)
    assert wait_until(lambda: bus.standins.received("hanoi"), 20)
    assert wait_until(lambda: len(bus.standins.received("hcmc")) >= 3, 20)

    def hcmc_line() -> str:
        shown = dvcbus(bus, "targets")
        assert shown.returncode == 0, shown.stderr
        return next(ln for ln in shown.stdout.splitlines() if ln.strip("│ ").startswith("hcmc"))

    assert wait_until(lambda: "open" in hcmc_line(), 15)  # states are saved every 2 s
    assert "HTTP 503" in hcmc_line()

    def traced() -> subprocess.CompletedProcess[str]:
        return dvcbus(bus, "trace", dossier["payload"]["dossier_no"])

    assert wait_until(lambda: "delivered" in traced().stdout, 10)
    out = traced().stdout
    assert "routed" in out and "hanoi" in out
    by_id = dvcbus(bus, "trace", dossier["id"])
    assert dossier["payload"]["dossier_no"] in by_id.stdout

    ok = dvcbus(bus, "audit", "verify")
    assert ok.returncode == 0 and "audit trail OK" in ok.stdout, ok.stdout + ok.stderr
    with bus.store.transaction(part="audit") as cur:
        cur.execute("UPDATE audit_log SET target = 'elsewhere' WHERE seq = 1")
    broken = dvcbus(bus, "audit", "verify")
    assert broken.returncode == 1
    assert "BROKEN at record 1" in broken.stderr
