"""The real log output of real runs: one JSON line per hop, and no personal data or secret."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import orjson

from adapters.testing.standin import Behaviour
from bus import app
from bus.routing.pipeline import Forward, RouterPipeline
from bus.settings import Settings
from tests.integration.harness import ROOT, send, wait_for_consumers, wait_until

EXAMPLES = ROOT / "schemas" / "examples"
TOKEN = "test-portal-token"  # DVCBUS_PORTAL_TOKEN of the test processes (harness.bus_env)
# Every other credential routes.yaml resolves from the environment (DVCBUS_*PASSWORD, *SECRET)
# must stay out of the logs too.
HOP_FIELDS = {"message_id", "type", "dossier_no", "outcome", "attempt", "event", "timestamp"}
# What in an example is personal: the applicant's and payer's fields, and anything shaped
# like an id number, a phone number or an e-mail address anywhere in the file.
PERSONAL_KEYS = {"full_name", "id_number", "phone", "email", "street", "tax_code", "name"}
PERSONAL_SHAPES = re.compile(
    r"(?<![0-9])(?:[0-9]{12}|[0-9]{9}|0[0-9]{9,10})(?![0-9])|[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+"
)
AGENCY_ANSWER = {
    "error_code": "1",
    "message": "Hồ sơ của CCCD 001190012345, SĐT 0987654321, minhanh.nguyen@example.com bị trả",
}


def personal_values(node: Any, key: str = "") -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for k, v in node.items():
            found |= personal_values(v, k)
    elif isinstance(node, list):
        for item in node:
            found |= personal_values(item, key)
    elif isinstance(node, str | int) and not isinstance(node, bool):
        text = str(node)
        if key in PERSONAL_KEYS and len(text) >= 4:
            found.add(text)
        found.update(PERSONAL_SHAPES.findall(text))
    return found


def hop_lines(text: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [line for line in lines if "outcome" in line]


def test_logs_of_a_real_run_have_one_line_per_hop_and_no_personal_data(bus) -> None:
    router = bus.process("run", "router", "--http-port", "0")
    dispatcher = bus.process("run", "dispatcher", "--http-port", "0")
    wait_for_consumers(
        [bus.names.ingress_queue, *(bus.names.delivery_queue(t) for t in bus.routes.targets)]
    )
    # hcmc refuses everything, quoting the applicant's data back (as agencies do).
    bus.standins.program("hcmc", Behaviour(status=422, body=AGENCY_ANSWER))

    files = sorted(EXAMPLES.glob("*/valid/*.json")) + sorted(EXAMPLES.glob("*/invalid/*.json"))
    bodies = [path.read_bytes() for path in files]
    assert all(r.ok for r in send(bus.names, bodies))

    settings = Settings.load(routes_file=bus.routes_file, namespace=bus.names.namespace)
    loaded = app.load(settings)
    pipeline = RouterPipeline(loaded.schemas, loaded.table, settings.max_message_bytes)
    copies = sum(len(d.targets) for d in map(pipeline.decide, bodies) if isinstance(d, Forward))
    assert copies >= 10

    def dispatcher_hops() -> int:
        return len(hop_lines(dispatcher.log_text()))

    assert wait_until(lambda: dispatcher_hops() >= copies, 30), dispatcher_hops()
    assert wait_until(lambda: len(hop_lines(router.log_text())) >= len(bodies), 10)
    router.terminate()
    dispatcher.terminate()
    logs = router.log_text() + dispatcher.log_text()

    # One line per hop, each with the fields an operator filters on.
    routed = hop_lines(router.log_text())
    assert len(routed) == len(bodies)
    assert Counter(line["event"] for line in routed).keys() <= {
        "router.routed",
        "router.dead_lettered",
    }
    delivered = hop_lines(dispatcher.log_text())
    assert len(delivered) == copies
    for line in routed + delivered:
        assert line.keys() >= HOP_FIELDS, line
    assert all("target" in line for line in delivered)
    # Every call has its duration; a copy parked before any call has none: the examples'
    # received then result returned of one dossier (2 → 10) is an impossible step.
    uncalled = [line for line in delivered if "duration_ms" not in line]
    assert [line.get("reason") for line in uncalled] == ["invalid_transition"]
    refused = [line for line in delivered if line["target"] == "hcmc"]
    assert refused and all(line["outcome"] == "dead_lettered" for line in refused)

    # Nothing personal, nothing secret, in any line of either process.
    credentials = {
        value
        for name, value in bus.env().items()
        if name.startswith("DVCBUS_") and re.search("TOKEN|PASSWORD|SECRET", name)
    }
    assert TOKEN in credentials
    secrets = credentials | personal_values(AGENCY_ANSWER)
    for path in files:
        try:
            secrets |= personal_values(orjson.loads(path.read_bytes()))
        except orjson.JSONDecodeError:
            continue
    secrets -= {"citizen", "organisation"}  # applicant.type values, not personal
    assert len(secrets) > 20
    leaked = sorted(s for s in secrets if s in logs)
    assert leaked == [], f"personal data or secrets in the logs: {leaked}"
    assert all("422" in line["detail"] for line in refused)  # the agency's answer, as far as told
