"""A system reports statuses only on its own agency's dossiers, on the real broker: Hà Nội's
system publishing as its own RabbitMQ user is refused a status on HCMC's dossier, whether the
dossier's number names HCMC or the bus recorded HCMC when it delivered the dossier.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from bus.broker.sending import user_of
from tests.integration import senders_file
from tests.integration.conftest import BusUnderTest
from tests.integration.harness import AMQP_URL, collect_dead, wait_until
from tests.integration.own_users import start_as_own_users, sync_users
from tests.integration.test_broker_permissions import (
    delete_users,  # noqa: F401  (a fixture)
)
from tests.integration.test_ingress_identity import publish_as
from tests.integration.test_recoverability import example

STATUS = "dossier.status_changed.v1/valid/received.json"  # Hà Nội's (000.04.01.H26)
HCMC_DOSSIER = "dossier.submitted.v1/valid/organisation-hcmc-direct.json"

SENDERS = (
    senders_file.HEAD
    + """\
  portal-test:                  # the test publisher stands for the portal
    agencies: [000.00.00.G22]
    sources: [000.00.00.G22/portal]
    types: [dossier.submitted]
    amqp_user: {guest}
"""
    + senders_file.hanoi_igate("{ns}-hanoi")
)


@pytest.fixture
def reporting_bus(bus: BusUnderTest, delete_users: list[str]) -> Iterator[BusUnderTest]:  # noqa: F811
    senders = bus.routes_file.with_name("senders.yaml")
    text = SENDERS.format(ns=bus.names.namespace, guest=user_of(AMQP_URL))
    # Users are synced without the test publisher (guest: never touched), then it is added.
    senders.write_text(text.replace("\n    amqp_user: guest\n", "\n"), encoding="utf-8")
    sync_users(bus, delete_users, "hanoi")
    senders.write_text(text, encoding="utf-8")
    start_as_own_users(bus)
    yield bus


def delivered(bus: BusUnderTest, target: str) -> set[str]:
    return {orjson.loads(r.body)["id"] for r in bus.receipts(target) if r.ok}


def test_a_status_update_for_another_agencys_dossier_is_refused(
    reporting_bus: BusUnderTest,
) -> None:
    bus = reporting_bus
    hanoi = f"{bus.names.namespace}-hanoi"
    guest = user_of(AMQP_URL)
    # HCMC receives a dossier whose number names no agency (a ministry-style number): the
    # bus records who received it when it delivers it.
    dossier = example(HCMC_DOSSIER, dossier_no="G09.20-20261124-0000107")
    dossier["correlation_id"] = "G09.20-20261124-0000107"
    publish_as(bus, None, dossier, user_id=guest)  # as the test publisher (AMQP_URL)
    assert wait_until(lambda: dossier["id"] in delivered(bus, "hcmc"), 20), bus.receipts()
    assert wait_until(lambda: bus.store.dossier_agency("G09.20-20261124-0000107") is not None, 10)

    own = example(STATUS)  # Hà Nội's own dossier: delivered
    by_number = example(STATUS, dossier_no="000.00.12.H29-261124-0107")  # HCMC's by its number
    by_number["correlation_id"] = "000.00.12.H29-261124-0107"
    by_record = example(STATUS, dossier_no="G09.20-20261124-0000107")  # HCMC's by the record
    by_record["correlation_id"] = "G09.20-20261124-0000107"
    for doc in (own, by_number, by_record):
        publish_as(bus, hanoi, doc, user_id=hanoi)

    dead = {d.message_id: d for d in collect_dead(bus.store, 2)}
    assert set(dead) == {by_number["id"], by_record["id"]}
    assert {d.reason for d in dead.values()} == {"unauthorised"}
    assert dead[by_number["id"]].detail == (
        "sender hanoi-igate may not report on dossier 000.00.12.H29-261124-0107: its receiving "
        "agency is 000.00.12.H29 (from its dossier number), and the sender speaks for "
        "000.00.00.H26"
    )
    assert dead[by_record["id"]].detail == (
        "sender hanoi-igate may not report on dossier G09.20-20261124-0000107: its receiving "
        "agency is 000.00.12.H29 (from recorded when the bus delivered the dossier), and the "
        "sender speaks for 000.00.00.H26"
    )
    assert wait_until(lambda: own["id"] in delivered(bus, "portal"), 20), bus.receipts()
    assert delivered(bus, "portal") == {own["id"]}
