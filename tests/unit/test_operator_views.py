"""What ``dvcbus dead list``, ``dead show`` and ``trace`` print: masked exactly like the logs,
data never read as rich markup, control characters escaped, a fan-out's rows still readable.

The store is a SQLite file written directly; the commands run as an operator runs them."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from rich.console import Console

from bus.cli import main
from bus.observability.audit import AuditRecord
from bus.observability.trace import journey_table, vn_time
from bus.store import DeadLetter, open_store

PHONE_ID = "0912345678"  # a sender put a phone number where the message id goes
ID_NUMBER = "001190012345"  # and a citizen's id number where the dossier number goes
RULE = "^([0-9]{12}|[0-9]{9})$"
TYPE_RULE = "^[a-z]+(\\.[a-z_]+)+$"  # rich would read [a-z] and [a-z_] as markup tags


def letter(n: int = 0, **fields: object) -> DeadLetter:
    values: dict = dict(
        message_id=PHONE_ID, message_type="dossier.submitted", target=None, reason="invalid",
        detail=f"payload.applicant.id_number: 'x' does not match '{RULE}'", stage="router",
        attempts=0, history=[], headers={}, body=b"\x00\x1b[31m" + ID_NUMBER.encode(),
        dead_at=1_780_000_000.0 + n, dossier_no=ID_NUMBER,
    )  # fmt: skip
    values.update(fields)
    return DeadLetter(**values)


@pytest.fixture
def store_env(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'bus.db'}"
    open_store(url).close()
    return {"DVCBUS_STORE_URL": url, "COLUMNS": "250"}


def add(env: dict[str, str], *letters: DeadLetter) -> list[int]:
    store = open_store(env["DVCBUS_STORE_URL"])
    try:
        return store.add_dead_letters(list(letters))
    finally:
        store.close()


def dvcbus(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_dead_list_masks_a_refused_messages_identity_like_the_logs(store_env) -> None:
    add(store_env, letter())
    code, out, _ = dvcbus(store_env, "dead", "list")
    assert code == 0, out
    assert PHONE_ID not in out and ID_NUMBER not in out
    assert "09******78" in out and "001*******345" in out


def test_dead_list_shows_a_validated_messages_identity_as_it_is(store_env) -> None:
    uuid = "0190f3c2-7d1e-7a2b-9c3d-4e5f60718293"
    add(
        store_env, letter(message_id=uuid, dossier_no="G09.20-20260609-0092637", stage="dispatcher")
    )
    _, out, _ = dvcbus(store_env, "dead", "list", "--json")
    row = orjson.loads(out)
    assert (row["message_id"], row["dossier_no"]) == (uuid, "G09.20-20260609-0092637")


def column(table: str, index: int) -> str:
    """The text of one column of a rich table's rows, folded lines joined again."""
    rows = [line.split("│") for line in table.splitlines() if line.startswith("│")]
    return "".join(cells[index + 1].strip() for cells in rows)


def test_dead_list_prints_regex_rules_in_reasons_exactly(store_env) -> None:
    add(store_env, letter(detail=f"'{RULE}' or '{TYPE_RULE}'"))
    _, out, _ = dvcbus(store_env, "dead", "list")
    assert column(out, 8).replace(" ", "") == f"'{RULE}'or'{TYPE_RULE}'"


def test_dead_show_masks_identity_and_escapes_control_bytes_of_a_malformed_body(
    store_env,
) -> None:
    (dead_id,) = add(store_env, letter())
    code, out, _ = dvcbus(store_env, "dead", "show", str(dead_id))
    assert code == 0, out
    assert PHONE_ID not in out and ID_NUMBER not in out
    assert "\\x00\\x1b[31m001*******345" in out
    assert "\x00" not in out and "\x1b" not in out
    assert f"'{RULE}'" in out


def test_routes_explain_prints_the_refusals_rule_exactly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(orjson.dumps({"id": PHONE_ID, "type": "Dossier", "version": 1}))
    result = CliRunner().invoke(main, ["routes", "explain", str(bad)])
    assert result.exit_code == 1
    assert "[a-z]" in result.stdout, result.stdout


def test_dead_list_json_is_one_masked_object_per_line(store_env) -> None:
    add(store_env, letter(0), letter(1, reason="malformed", body=b"{"))
    code, out, err = dvcbus(store_env, "dead", "list", "--json")
    assert code == 0, err
    rows = [orjson.loads(line) for line in out.splitlines()]
    assert [r["reason"] for r in rows] == ["invalid", "malformed"]
    assert {r["message_id"] for r in rows} == {"09******78"}
    assert rows[0]["detail"].endswith(f"'{RULE}'") and isinstance(rows[0]["id"], int)
    assert PHONE_ID not in out and ID_NUMBER not in out and err == ""


def test_dead_list_says_when_limit_cut_the_list(store_env) -> None:
    add(store_env, *(letter(n, body=b"%d" % n) for n in range(3)))
    _, table, _ = dvcbus(store_env, "dead", "list", "--limit", "2")
    assert "2 dead letter(s)" in table
    assert table.rstrip().endswith("showing the first 2; more match: raise --limit to see them")
    _, lines, err = dvcbus(store_env, "dead", "list", "--limit", "2", "--json")
    assert len(lines.splitlines()) == 2 and "raise --limit" in err
    _, whole, err = dvcbus(store_env, "dead", "list", "--limit", "3", "--json")
    assert len(whole.splitlines()) == 3 and err == ""


def record(event: str, **fields: object) -> AuditRecord:
    values: dict = dict(
        at=1_780_000_000.0, process="router", stage="router", event=event,
        message_id=PHONE_ID, message_type="dossier.submitted", dossier_no=ID_NUMBER,
        target=None, reason="invalid", detail=f"does not match '{RULE}'", attempt=0,
        duration=None, body_sha256=None,
    )  # fmt: skip
    values.update(fields)
    return AuditRecord(**values)


def test_trace_masks_a_refused_message_and_its_refused_replay(store_env) -> None:
    store = open_store(store_env["DVCBUS_STORE_URL"])
    try:  # as a trail written before masking covered them would hold them
        store.append_audit(
            [record("dead_lettered"), record("replayed", at=1_780_000_100.0, detail=None)]
        )
    finally:
        store.close()
    code, out, err = dvcbus(store_env, "trace", ID_NUMBER)
    assert code == 0, err
    assert "dead_lettered" in out and "replayed (invalid)" in out
    assert PHONE_ID not in out and ID_NUMBER not in out
    assert "001*******345" in out and f"'{RULE}'" in out


def test_trace_keeps_time_and_event_whole_with_a_fifteen_target_fan_out() -> None:
    targets = ",".join(f"agency-{n:02d}" for n in range(15))
    uuid = "0190f3c2-7d1e-7a2b-9c3d-4e5f60718293"
    records = [
        record("routed", message_id=uuid, reason=None, detail=None, target=targets),
        record("delivered", at=1_780_000_001.0, message_id=uuid, stage="dispatcher",
               reason=None, detail=None, target="agency-14", duration=0.25),
    ]  # fmt: skip
    out = io.StringIO()
    Console(file=out, width=170).print(journey_table(records))
    text = out.getvalue()
    for r in records:
        row = next(line for line in text.splitlines() if vn_time(r.at) in line)
        assert f" {r.event} " in row
    assert "agency-00" in text and "agency-14" in text.replace("\n", "")
