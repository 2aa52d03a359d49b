"""Editing routes.yaml under a running bus: SIGHUP applies a good file, refuses a broken one."""

from __future__ import annotations

import signal
from typing import Any

import orjson
import yaml

from tests.integration.harness import send, wait_until
from tests.integration.test_recoverability import example, fast_retries


def edit(bus, change: Any) -> None:
    doc = yaml.safe_load(bus.routes_file.read_text(encoding="utf-8"))
    change(doc)
    bus.routes_file.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))


def hangup(*processes) -> None:
    for proc in processes:
        proc.proc.send_signal(signal.SIGHUP)


def test_a_broken_routes_file_is_refused_and_the_last_good_routes_stay(make_bus) -> None:
    bus = make_bus(fast_retries)
    router, dispatcher = bus.start_router(), bus.start_dispatcher()
    edit(bus, lambda d: d["routes"][0].update(to="nowhere"))
    hangup(router, dispatcher)
    assert wait_until(lambda: "routes.refused" in router.log_text(), 10)
    assert "unknown target 'nowhere'" in router.log_text()
    assert wait_until(lambda: "routes.refused" in dispatcher.log_text(), 10)
    doc = example("dossier.status_changed.v1/valid/received.json")
    send(bus.names, [orjson.dumps(doc)])
    assert wait_until(lambda: bus.standins.received("portal"), 20)  # still routed as before
    assert router.alive and dispatcher.alive


def test_a_good_routes_file_is_applied_without_a_restart(make_bus) -> None:
    bus = make_bus(fast_retries)
    router, dispatcher = bus.start_router(), bus.start_dispatcher()

    def change(doc: dict[str, Any]) -> None:
        for route in doc["routes"]:
            if route["name"] == "hanoi":
                route["to"] = "shared-igate"  # the router's part
        # the dispatcher's part: hcmc's system moves to where danang's is (same kind of system)
        agency = doc["targets"]["hcmc"]["agency"]
        doc["targets"]["hcmc"] = {**doc["targets"]["danang"], "agency": agency}

    edit(bus, change)
    hangup(router, dispatcher)
    assert wait_until(lambda: "routes.reloaded" in router.log_text(), 10)
    assert wait_until(lambda: "dispatcher.target_changed" in dispatcher.log_text(), 10)
    hanoi = example("dossier.submitted.v1/valid/citizen-hanoi-online.json")
    hcmc = example("dossier.submitted.v1/valid/organisation-hcmc-direct.json")
    send(bus.names, [orjson.dumps(hanoi), orjson.dumps(hcmc)])
    assert wait_until(lambda: bus.standins.received("shared-igate"), 20)
    assert wait_until(lambda: bus.standins.received("danang"), 20)  # hcmc's new endpoint
    assert bus.standins.received("hanoi") == [] and bus.standins.received("hcmc") == []
    assert router.alive and dispatcher.alive
