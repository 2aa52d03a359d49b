"""The SDK's declared surface: what ``adapters`` exports, cheaply, and the contract headers."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

import adapters
from adapters import contract_headers, new_traceparent, safexml
from adapters.kinds.onestop import OneStopSoapAdapter
from adapters.kinds.rest import RestAdapter
from adapters.kinds.soap import BUS_HEADERS, SOAP11
from adapters.message import Message

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "schemas" / "examples"
TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-01$")

# Changing this list is changing the SDK: docs/adapters.md "The SDK surface" lists the same.
DECLARED = {
    "SDK_VERSION",
    "Adapter",
    "AdapterConfigError",
    "AdapterOptions",
    "Delivered",
    "Message",
    "Outcome",
    "PermanentFailure",
    "TargetSpec",
    "TransientFailure",
    "classify",
    "contract_headers",
    "http",
    "mapping",
    "merge_options",
    "new_traceparent",
    "parse_options",
    "placeholder_credentials",
    "require_credentials",
    "testing",
}


def example(name: str = "dossier.submitted.v1/valid/citizen-hanoi-online.json") -> Message:
    body = (EXAMPLES / name).read_bytes()
    return Message.from_doc(orjson.loads(body), body)


def test_the_sdk_declares_exactly_its_surface_and_every_name_resolves() -> None:
    assert set(adapters.__all__) == DECLARED
    for name in adapters.__all__:
        assert getattr(adapters, name) is not None, name
    assert re.fullmatch(r"\d+\.\d+", adapters.SDK_VERSION)


def test_importing_the_sdk_loads_no_xml_or_http_library() -> None:
    script = textwrap.dedent(
        """
        import sys
        import adapters
        heavy = sorted(
            m for m in sys.modules if m.split(".")[0] in ("zeep", "lxml", "aiohttp", "bus")
        )
        assert not heavy, heavy
        assert adapters.http.__name__ == "adapters.http"  # loaded on first use
        assert "aiohttp" in sys.modules
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_contract_headers_carry_the_message_id_its_traceparent_and_its_type() -> None:
    message = example()
    assert contract_headers(message) == {
        "Idempotency-Key": message.id,
        "traceparent": message.traceparent,
        "X-Message-Type": message.type,
    }


def test_a_message_without_traceparent_gets_a_fresh_valid_one_per_call() -> None:
    message = dataclasses.replace(example(), traceparent=None)
    first, second = contract_headers(message), contract_headers(message)
    assert TRACEPARENT.match(first["traceparent"])
    assert first["traceparent"] != second["traceparent"]
    assert TRACEPARENT.match(new_traceparent())


def test_the_rest_kind_sends_the_contract_headers() -> None:
    spec = adapters.TargetSpec("t", "a", "rest", "http://127.0.0.1:9/x", 1.0, 2.0, 1)
    message = example()
    headers = RestAdapter(spec).headers_for(message)
    assert headers == {
        "Content-Type": "application/json; charset=utf-8",
        **contract_headers(message),
    }


def test_the_soap_header_elements_carry_the_same_values_as_the_http_headers() -> None:
    spec = adapters.TargetSpec(
        "t", "a", "onestop-soap", "http://127.0.0.1:9/x", 1.0, 2.0, 1,
        credentials={"username": "u", "password": "p"},
    )  # fmt: skip
    message = dataclasses.replace(example(), traceparent=None)  # one fresh traceparent, twice
    _call, body, headers = OneStopSoapAdapter(spec).build(message)
    header = safexml.parse(body).find(f"{{{SOAP11}}}Header")
    assert header.findtext(f"{{{BUS_HEADERS}}}IdempotencyKey") == headers["Idempotency-Key"]
    assert header.findtext(f"{{{BUS_HEADERS}}}traceparent") == headers["traceparent"]
    assert TRACEPARENT.match(headers["traceparent"])
    assert headers["X-Message-Type"] == message.type


def test_the_test_kit_exports_resolve_and_a_behaviour_takes_an_act_or_its_value() -> None:
    from adapters import testing
    from adapters.testing import Act, Behaviour

    for name in testing.__all__:
        assert getattr(testing, name) is not None, name
    assert Behaviour(act="fault").act is Act.FAULT  # the control API sends the value
    assert Behaviour(act=Act.REDIRECT).act == "redirect"
    with pytest.raises(ValueError, match=r"act 'laugh' is not one of \['answer', "):
        Behaviour(act="laugh")  # type: ignore[arg-type]


def test_the_docs_list_exactly_the_sdk_surface() -> None:
    text = (ROOT / "docs" / "adapters.md").read_text(encoding="utf-8")
    section = text.split("## The SDK surface", 1)[1].split("**Compatibility promise.**", 1)[0]
    table, kit = section.split("**`adapters.testing`**", 1)
    first_column = [row.split("|")[1] for row in table.splitlines() if row.startswith("| `")]
    documented = {name for cell in first_column for name in re.findall(r"`(\w+)`", cell)}
    assert documented == set(adapters.__all__)
    kit_names = set(re.findall(r"`(\w+)`", kit.split("__all__`:", 1)[1].split("(see", 1)[0]))
    assert kit_names == set(adapters.testing.__all__)


def test_a_flagged_delivery_says_so_in_x_bus_flags() -> None:
    message = dataclasses.replace(example(), flags=("status-history",))
    assert contract_headers(message)["X-Bus-Flags"] == "status-history"
    assert "X-Bus-Flags" not in contract_headers(example())
