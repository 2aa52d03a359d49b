"""The first step of the router: size, encoding and JSON checks before anything is parsed."""

import json
import random

import pytest

from bus.contract import envelope
from bus.contract.envelope import Message, parse
from bus.contract.rejections import Reason, Rejection


def test_a_json_object_is_parsed() -> None:
    assert parse(b'{"id": "x", "n": 1}') == {"id": "x", "n": 1}


def test_oversized_body_is_refused_before_parsing() -> None:
    body = b"{" + b" " * 2000 + b"}"
    with pytest.raises(Rejection) as caught:
        parse(body, max_bytes=1024)
    assert caught.value.reason is Reason.TOO_LARGE
    assert "2002 bytes" in caught.value.detail and "1024" in caught.value.detail


def test_broken_json_is_malformed_with_position() -> None:
    with pytest.raises(Rejection) as caught:
        parse(b'{"id": "x",\n "type": }')
    assert caught.value.reason is Reason.MALFORMED
    assert "line 2" in caught.value.detail


def test_non_utf8_body_is_malformed_with_offset() -> None:
    with pytest.raises(Rejection) as caught:
        parse(b'{"name": "Nguy\xe1n"}')
    assert caught.value.reason is Reason.MALFORMED
    assert "not UTF-8" in caught.value.detail and "offset 14" in caught.value.detail


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"42", b"null"])
def test_json_that_is_not_an_object_is_malformed(body: bytes) -> None:
    with pytest.raises(Rejection) as caught:
        parse(body)
    assert caught.value.reason is Reason.MALFORMED
    assert "not an object" in caught.value.detail


def test_a_status_update_without_correlation_id_is_about_its_payload_dossier() -> None:
    doc = {
        "id": "m1",
        "type": "dossier.status_changed",
        "version": 1,
        "source": "x",
        "occurred_at": "2026-11-25T09:00:00+07:00",
        "payload": {"dossier_no": "D-1"},
    }
    assert Message.from_doc(doc, b"").dossier_no == "D-1"
    assert Message.from_doc({**doc, "correlation_id": "D-2"}, b"").dossier_no == "D-2"


# --------------------------------------------------------------------------- duplicate keys


def _refusal(body: bytes) -> Rejection:
    with pytest.raises(Rejection) as caught:
        parse(body)
    return caught.value


def test_a_duplicate_top_level_key_is_malformed_naming_it_at_the_root() -> None:
    rej = _refusal(b'{"id": "m1", "type": "dossier.submitted", "type": "payment.confirmed"}')
    assert rej.reason is Reason.MALFORMED
    assert rej.detail == 'duplicate key "type" at $'


def test_a_duplicate_nested_key_is_named_with_its_object_path() -> None:
    rej = _refusal(b'{"id": "m1", "payload": {"amount": 100, "fee": 1, "amount": 100000}}')
    assert rej.detail == 'duplicate key "amount" at payload'


def test_a_duplicate_key_in_an_array_element_is_named_with_its_index() -> None:
    body = b'{"payload": {"documents": [{"name": "a"}, {"name": "b", "sha256": "", "name": "c"}]}}'
    assert _refusal(body).detail == 'duplicate key "name" at payload.documents[1]'


def test_keys_that_differ_only_in_case_are_not_duplicates() -> None:
    assert parse(b'{"type": "a", "Type": "b", "TYPE": "c"}') == {
        "type": "a",
        "Type": "b",
        "TYPE": "c",
    }


def test_an_escaped_spelling_of_a_key_is_a_duplicate_of_the_plain_one() -> None:
    assert _refusal(b'{"t\\u0079pe": "a", "type": "b"}').detail == 'duplicate key "type" at $'


def test_the_same_key_in_different_objects_is_not_a_duplicate() -> None:
    body = b'{"name": "x", "payload": {"name": "y", "items": [{"name": 1}, {"name": 2}]}}'
    assert parse(body)["payload"]["items"][1] == {"name": 2}


def test_the_first_duplicate_in_text_order_is_the_one_named() -> None:
    body = b'{"payload": {"a": 1, "a": 2}, "type": "x", "type": "y"}'
    assert _refusal(body).detail == 'duplicate key "a" at payload'


def test_a_duplicate_key_that_does_not_look_like_a_field_name_is_not_quoted() -> None:
    body = b'{"payload": {"Nguyen Van A 0123": 1, "Nguyen Van A 0123": 2}}'
    assert _refusal(body).detail == "duplicate key <unnamed, 17 characters> at payload"


@pytest.mark.parametrize(
    "body",
    [
        # strings with colons (timestamps, URLs) around the duplicate
        b'{"at": "2026-11-25T09:00:00+07:00", "type": "a", "type": "b"}',
        # the dropped value has fewer colons than the kept one, even written escaped
        b'{"x": "a", "x": "b\\u003a\\u003Ac:d"}',
        # the kept key holds escaped colons, the dropped member none
        b'{"k\\u003a": 1, "k\\u003a": 2}',
        # a literal backslash-u003a next to a duplicate
        b'{"note": "\\\\u003a", "id": 1, "id": 2}',
        # the duplicate is an object whose own colons disappear with it
        b'{"p": {"a": "1:2", "b": {"c": ":"}}, "p": {"a": "::::::::"}}',
    ],
)
def test_colons_inside_strings_cannot_hide_a_duplicate(body: bytes) -> None:
    assert _refusal(body).detail.startswith("duplicate key")


def test_a_literal_backslash_u003a_in_a_string_is_not_a_duplicate() -> None:
    assert parse(b'{"note": "C:\\\\u003a\\u003a", "n": 1}') == {"note": "C:\\u003a:", "n": 1}


def test_random_bodies_with_a_duplicate_are_all_refused() -> None:
    """Seeded fuzz: whatever the strings hold, a repeated key is always found."""
    rng = random.Random(11)
    atoms = ["a", ":", "\\u003a", "\\\\", "\\\\u003a", "\\u0079", "é", "\\n", " "]

    def text() -> str:
        return "".join(rng.choice(atoms) for _ in range(rng.randint(0, 6)))

    for _ in range(2000):
        members = [(f"k{i}", f'"{text()}"') for i in range(rng.randint(1, 5))]
        dup_at = rng.randrange(len(members))
        members.insert(rng.randint(dup_at + 1, len(members)), (members[dup_at][0], f'"{text()}"'))
        obj = "{" + ", ".join(f'"{k}": {v}' for k, v in members) + "}"
        body = f'{{"s": "{text()}", "p": [{obj}], "t": "{text()}"}}'.encode()
        assert _refusal(body).detail.startswith("duplicate key"), body


def test_realistic_traffic_never_takes_the_exact_duplicate_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The slow stdlib parse runs only when the cheap test suspects a duplicate."""
    from bus import app
    from bus.demo import traffic
    from bus.settings import Settings

    def exact_check(body: bytes) -> None:
        raise AssertionError(f"exact check ran for {body[:80]!r}")

    monkeypatch.setattr(envelope, "_refuse_duplicate_keys", exact_check)
    loaded = app.load(Settings.load(None))
    for generated in traffic.generate(300, seed=3, loaded=loaded, oversized=False):
        if generated.kind != "malformed":
            doc = parse(generated.body)  # compact, as orjson writes it
            parse(json.dumps(doc).encode())  # spaces, non-ASCII as \u escapes
            parse(json.dumps(doc, indent=2, ensure_ascii=False).encode())
    parse(b'{"note": "\\u003cb\\u003e 09:00 \\u0026", "n": 1}')  # Go's HTML-safe escapes


def _nested(depth: int, inner: bytes) -> bytes:
    return b'{"a": ' * depth + inner + b"}" * depth


@pytest.mark.parametrize("depth", [300, 1000])
def test_a_body_nested_deeper_than_orjson_writes_is_still_parsed(depth: int) -> None:
    doc = parse(_nested(depth, b'{"at": "09:00"}'))
    for _ in range(depth):
        doc = doc["a"]
    assert doc == {"at": "09:00"}


def test_a_duplicate_deep_down_is_named_with_the_end_of_its_path() -> None:
    detail = _refusal(_nested(300, b'{"x": "1:2", "x": 2}')).detail
    assert detail.startswith('duplicate key "x" at ….a.a')
    assert len(detail) < 160


def test_a_duplicate_too_deep_for_the_exact_check_is_still_refused() -> None:
    rej = _refusal(_nested(1000, b'{"x": 1, "x": 2}'))
    assert (rej.reason, rej.detail) == (
        Reason.MALFORMED,
        "nested too deep to check for duplicate keys",
    )
