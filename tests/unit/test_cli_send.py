"""`dvcbus send` refuses what is not a message before it connects, and `--check` explains
what the router would refuse. Nothing here reaches a broker: the AMQP URL points nowhere."""

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from bus.cli import main
from bus.cli.send import NotSendable, messages_of

ROOT = Path(__file__).resolve().parents[2]
VALID = ROOT / "schemas" / "examples" / "dossier.submitted.v1" / "valid"
NOWHERE = {"DVCBUS_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/%2F", "DVCBUS_NAMESPACE": "nosend"}


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env=NOWHERE)
    return result.exit_code, result.output


def test_a_file_with_one_message_is_sent_as_its_bytes(tmp_path: Path) -> None:
    raw = b'{"id": "m1",  "type": "x"}\n'
    assert [(m.label, m.body) for m in messages_of(tmp_path / "a.json", raw, each=False)] == [
        (str(tmp_path / "a.json"), raw)
    ]


def test_a_broken_file_is_still_a_message_for_the_router_to_judge(tmp_path: Path) -> None:
    (message,) = messages_of(tmp_path / "a.json", b'{"id": ', each=False)
    assert message.body == b'{"id": '


@pytest.mark.parametrize("raw", [b"", b" \n\t\r\n"])
def test_an_empty_file_is_never_a_message(tmp_path: Path, raw: bytes) -> None:
    with pytest.raises(NotSendable, match="empty file, not a message"):
        messages_of(tmp_path / "a.json", raw, each=True)


def test_an_array_is_refused_without_each(tmp_path: Path) -> None:
    with pytest.raises(NotSendable, match=r"a JSON array of 2 element.*pass --each"):
        messages_of(tmp_path / "a.json", b'[{"id": "1"}, {"id": "2"}]', each=False)


def test_with_each_an_array_is_one_message_per_element(tmp_path: Path) -> None:
    messages = messages_of(tmp_path / "a.json", b'[{"id": "1"}, {"id": "2"}]', each=True)
    assert [(m.label, orjson.loads(m.body)) for m in messages] == [
        (f"{tmp_path / 'a.json'}[0]", {"id": "1"}),
        (f"{tmp_path / 'a.json'}[1]", {"id": "2"}),
    ]


def test_with_each_an_empty_array_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NotSendable, match="empty JSON array"):
        messages_of(tmp_path / "a.json", b"[]", each=True)


def test_with_each_an_element_with_a_repeated_key_is_refused_not_laundered(
    tmp_path: Path,
) -> None:
    """Re-serialising the element would keep one of the two values without a word."""
    with pytest.raises(NotSendable, match=r'malformed: duplicate key "type" at \[1\]'):
        messages_of(tmp_path / "a.json", b'[{"id": "1"}, {"type": "a", "type": "b"}]', each=True)


def test_empty_files_and_arrays_stop_the_command_before_anything_is_sent(tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"")
    array = tmp_path / "array.json"
    array.write_bytes(b"[{}, {}]")
    code, out = run("send", str(VALID / "citizen-hanoi-online.json"), str(empty), str(array))
    assert code == 1, out
    assert f"{empty}: empty file, not a message" in out
    assert f"{array}: a JSON array of 2 element(s), not a message: pass --each" in out
    assert "nothing sent: 2 problem(s)" in out
    assert "sent " not in out.replace("nothing sent", "")


def test_check_names_each_refused_message_with_its_reason_and_exact_error(
    tmp_path: Path,
) -> None:
    doc = orjson.loads((VALID / "citizen-hanoi-online.json").read_bytes())
    doc["payload"]["procedure_code"] = "1.01288"
    invalid = tmp_path / "invalid.json"
    invalid.write_bytes(orjson.dumps(doc))
    two_types = tmp_path / "two-types.json"
    two_types.write_bytes(b'{"type": "dossier.status_changed", ' + orjson.dumps(doc)[1:])
    valid = VALID / "citizen-hanoi-online.json"
    code, out = run("send", "--check", str(valid), str(invalid), str(two_types))
    assert code == 1, out
    lines = out.splitlines()
    pattern = "^[1-3]\\.[0-9]{6}$"
    assert (
        f"would be refused: {invalid}: invalid: payload.procedure_code: pattern {pattern}" in lines
    )
    assert f'would be refused: {two_types}: malformed: duplicate key "type" at $' in lines
    assert "nothing sent: 2 problem(s)" in lines


def test_check_refuses_an_unroutable_message_the_router_would_park(tmp_path: Path) -> None:
    doc = orjson.loads((VALID / "citizen-hanoi-online.json").read_bytes())
    doc["payload"]["receiving_agency"] = "000.00.00.G09"
    unroutable = tmp_path / "unroutable.json"
    unroutable.write_bytes(orjson.dumps(doc))
    code, out = run("send", "--check", str(unroutable))
    assert code == 1, out
    assert f"would be refused: {unroutable}: unroutable: " in out
    assert "agency=000.00.00.G09" in out
