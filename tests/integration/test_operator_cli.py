"""What an operator types — dead letters, targets, trace, audit verify — on a real run."""

from __future__ import annotations

import re
import subprocess
import sys

import orjson
import pika

from adapters.testing.standin import Behaviour
from bus.broker.stamp import StampKey
from bus.broker.topology import Names
from bus.observability.hops import Event, Hops
from bus.recovery import replay as replay_module
from bus.store import DELIVERED, PARKED, PURGED, REPLAYED, DeadFilter, DeadLetter, open_store
from tests.integration.harness import ROOT, collect_dead, send, wait_until
from tests.integration.store_fixtures import sqlite_url
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
    # The replay is a hop like any other: in the log (stderr) and in the audit trail.
    (line,) = [
        orjson.loads(ln) for ln in replayed.stderr.splitlines() if '"operator.replayed"' in ln
    ]
    assert (line["message_id"], line["target"], line["reason"]) == (
        refused["id"],
        "hanoi",
        "rejected",
    )
    trail = bus.store.audit_records(message_ids=[refused["id"]])
    replay_hops = [r for r in trail if r.event == "replayed"]
    # sent back by the operator, and taken up by the dispatcher (where it is counted); each
    # process writes its own batches, so the chain's order is not the order of the two
    assert sorted((r.stage, r.target) for r in replay_hops) == [
        ("dispatcher", "hanoi"),
        ("operator", "hanoi"),
    ]
    delivered_at = [r.at for r in trail if r.event == "delivered"]
    taken_up = next(r.at for r in replay_hops if r.stage == "dispatcher")
    assert taken_up < max(delivered_at)  # replayed, then delivered
    traced = dvcbus(bus, "trace", refused["id"])
    assert "replayed" in traced.stdout, traced.stdout
    verified = dvcbus(bus, "audit", "verify")  # the operator's records extend the same chain
    assert verified.returncode == 0, verified.stdout + verified.stderr
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


def test_dead_letters_sharing_a_message_id_are_each_listed_shown_and_replayed_alone(
    bus,
) -> None:
    bus.start_router()
    bus.start_dispatcher()
    base = example("dossier.submitted.v1/valid/citizen-hanoi-online.json")
    bodies = [
        orjson.dumps({**base, "payload": {**base["payload"], "procedure_code": "9"}}),
        orjson.dumps({**base, "payload": {**base["payload"], "receiving_agency": "H26"}}),
        orjson.dumps({**base, "version": 0}),
    ]
    send(bus.names, bodies)
    dead = sorted(collect_dead(bus.store, 3), key=lambda d: bodies.index(d.body))
    assert len(dead) == 3 and {d.message_id for d in dead} == {base["id"]}

    listed = dvcbus(bus, "dead", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count(base["id"]) == 3
    for letter in dead:
        assert re.search(rf"^\S\s+{letter.id}\s", listed.stdout, re.MULTILINE), listed.stdout

    shown = dvcbus(bus, "dead", "show", str(dead[1].id))
    assert shown.returncode == 0, shown.stderr
    assert dead[1].detail in shown.stdout
    assert dead[0].detail not in shown.stdout and dead[2].detail not in shown.stdout

    replayed = dvcbus(bus, "dead", "replay", "--id", str(dead[1].id))
    assert replayed.returncode == 0, replayed.stderr
    assert "1 replayed" in replayed.stdout
    assert bus.store.dead_letter(dead[1].id).state == REPLAYED
    assert [bus.store.dead_letter(d.id).state for d in (dead[0], dead[2])] == [PARKED, PARKED]
    # the router refuses the same bytes again: a new dead letter, the replayed one stays
    again = collect_dead(bus.store, 4)
    assert (
        len(again) == 4 and again[-1].body == bodies[1] and again[-1].id not in {d.id for d in dead}
    )


def test_a_refused_message_with_personal_data_for_identifiers_is_masked_in_every_view(
    bus,
) -> None:
    bus.start_router()
    bus.start_dispatcher()  # records the dead letters in the store
    phone, id_number = "0912345678", "001190012345"  # a phone number as id, an id number
    doc = example("dossier.submitted.v1/valid/citizen-hanoi-online.json", dossier_no=id_number)
    body = orjson.dumps({**doc, "id": phone, "correlation_id": id_number})
    send(bus.names, [body])
    (dead,) = collect_dead(bus.store, 1)
    assert (dead.stage, dead.message_id, dead.dossier_no) == ("router", phone, id_number)

    listed = dvcbus(bus, "dead", "list")
    as_json = dvcbus(bus, "dead", "list", "--json")
    shown = dvcbus(bus, "dead", "show", str(dead.id))
    replayed = dvcbus(bus, "dead", "replay", "--id", str(dead.id))
    assert "1 replayed" in replayed.stdout, replayed.stderr
    # the router refuses it again: its replayed hop is a refusal, masked like the dead letter
    assert wait_until(lambda: len(bus.store.audit_records(dossier_no="001*******345")) >= 3, 20)
    trail = bus.store.audit_records(dossier_no="001*******345")
    assert ("router", "replayed") in {(r.stage, r.event) for r in trail}
    assert {r.message_id for r in trail if r.stage == "router"} == {"09******78"}
    traced = dvcbus(bus, "trace", "001*******345")
    for out in (listed, as_json, shown, replayed, traced):
        assert out.returncode == 0, out.stderr
        assert "****78" in out.stdout, out.stdout  # trace shows the last six characters
        assert phone not in out.stdout and id_number not in out.stdout, out.stdout
    assert "replayed (invalid)" in traced.stdout
    # the operator's own replayed hop too: in the command's log lines and in the trail
    assert phone not in replayed.stderr and id_number not in replayed.stderr, replayed.stderr
    assert not bus.store.audit_records(dossier_no=id_number, message_ids=[phone])


def test_targets_trace_and_audit_verify_tell_the_story(make_bus) -> None:
    bus = make_bus(fast_retries)
    bus.start_router()
    bus.start_dispatcher()
    hcmc_docs = [
        example("dossier.submitted.v1/valid/organisation-hcmc-direct.json") for _ in range(9)
    ]
    send(bus.names, [orjson.dumps(hcmc_docs[0])])  # delivered while Hồ Chí Minh City is up
    assert wait_until(lambda: bus.standins.received("hcmc"), 20)
    bus.standins.program("hcmc", Behaviour(status=503))
    dossier = example("dossier.submitted.v1/valid/citizen-hanoi-online.json")
    send(bus.names, [orjson.dumps(dossier)])
    send(bus.names, [orjson.dumps(d) for d in hcmc_docs[1:]])
    assert wait_until(lambda: bus.standins.received("hanoi"), 20)
    assert wait_until(lambda: len(bus.standins.received("hcmc")) >= 4, 20)

    def hcmc_row() -> dict[str, str]:
        shown = dvcbus(bus, "targets")
        assert shown.returncode == 0, shown.stderr
        lines = shown.stdout.splitlines()
        header = [c.strip() for c in next(ln for ln in lines if "┃" in ln).strip("┃").split("┃")]
        row = next(ln for ln in lines if ln.strip("│ ").startswith("hcmc"))
        return dict(zip(header, (c.strip() for c in row.strip("│").split("│")), strict=True))

    # The circuit is open, its messages wait in the queue, and how long they have waited
    # shows (an estimate from the newest message it settled: never "-" while some wait).
    row: dict[str, str] = {}

    def open_and_waiting() -> bool:
        row.update(hcmc_row())
        return row["state"] == "open" and row["queued"] not in ("0", "?")

    assert wait_until(open_and_waiting, 20), row  # states are saved every 2 s
    assert "HTTP 503" in row["last error"]
    assert re.fullmatch(r"~?\d+s", row["oldest waiting"]), row  # "~": none in flight

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


class _LostChannel:
    """A confirm channel whose connection dies on the first publish."""

    is_open = True

    def confirm_delivery(self) -> None:
        pass

    def basic_publish(self, *args: object, **kwargs: object) -> None:
        self.is_open = False
        raise pika.exceptions.StreamLostError("Stream connection lost: ConnectionResetError(104)")


class _LostConnection:
    def __init__(self, _params: object) -> None:
        self.chan = _LostChannel()

    @property
    def is_open(self) -> bool:
        return self.chan.is_open

    def channel(self) -> _LostChannel:
        return self.chan

    def close(self) -> None:
        pass


class _Collect:
    def __init__(self) -> None:
        self.hops: list = []

    def record(self, hop) -> None:
        self.hops.append(hop)


def test_a_replay_that_is_not_sent_leaves_the_dead_letter_parked(tmp_path, monkeypatch) -> None:
    store = open_store(sqlite_url(tmp_path))
    try:
        doc = example("dossier.submitted.v1/valid/citizen-hanoi-online.json")
        letters = [
            DeadLetter(
                message_id=f"{doc['id'][:-1]}{n}", message_type="dossier.submitted",
                target="hanoi", reason="rejected", detail="HTTP 400", stage="dispatcher",
                attempts=1, history=[], headers={}, body=orjson.dumps(doc), dead_at=1.0,
            )
            for n in range(2)
        ]  # fmt: skip
        first, second = store.add_dead_letters(letters)
        monkeypatch.setattr(replay_module.pika, "BlockingConnection", _LostConnection)
        sink = _Collect()
        results = list(
            replay_module.replay(
                store, "amqp://unused", Names("t"), DeadFilter(target="hanoi"),
                rate=0, who="tester", hops=Hops([sink]), stamp_key=StampKey(b"k" * 32),
            )
        )  # fmt: skip
        assert [(r.dead_id, r.done) for r in results] == [(first, False), (second, False)]
        assert results[0].note == "not sent: StreamLostError"
        assert results[1].note.startswith("not attempted")
        lost = store.dead_letter(first)
        assert lost.state == PARKED  # not stranded as "replayed" without having been sent
        assert [a["action"] for a in lost.actions] == ["replay", "replay_failed"]
        assert "StreamLostError" in lost.actions[1]["detail"]
        untouched = store.dead_letter(second)
        assert (untouched.state, untouched.actions) == (PARKED, [])
        assert not [h for h in sink.hops if h.event is Event.REPLAYED]  # nothing was replayed
    finally:
        store.close()
