"""The router verifies every payment confirmation before any copy leaves it.

The platform's checksum over its own strings, with the partner's secrets (several while
rotating), and the canonical fields held to what was signed: a forged ``failed`` → ``success``
with the checksum left as it was is refused, and so is everything the router cannot verify.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from adapters.kinds.payment_signature import platform_checksum, sign_as_platform
from bus.contract.rejections import Reason, Rejection
from bus.contract.schemas import SchemaRegistry
from bus.routes.credentials import UnreadableReference
from bus.routes.model import Partner, Payments
from bus.routing.payment_checksum import PaymentChecksum

EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "examples"
V2 = EXAMPLES / "payment.confirmed.v2" / "valid"
V1_SUCCESS = EXAMPLES / "payment.confirmed.v1" / "valid" / "success-vcb.json"
SECRET = "demo-secret"  # the examples are signed with it
REGISTRY = SchemaRegistry.load()


def _doc(name: str = "success-vcb.json") -> dict[str, Any]:
    return orjson.loads((V2 / name).read_bytes())


def _checker(**partners: list[str]) -> PaymentChecksum:
    secrets = {
        f"env:S_{i}_{code}": s for code, refs in partners.items() for i, s in enumerate(refs)
    }

    def read(ref: str) -> str:
        if ref not in secrets:
            raise UnreadableReference("is not set")
        return secrets[ref]

    payments = Payments(
        partners={
            code: Partner(secrets=tuple(f"env:S_{i}_{code}" for i in range(len(refs))))
            for code, refs in partners.items()
        }
    )
    return PaymentChecksum.from_config(payments, read)


def _refusal(checker: PaymentChecksum, doc: dict[str, Any], version: int = 2) -> Rejection:
    with pytest.raises(Rejection) as caught:
        checker.check(doc, version)
    return caught.value


# --- the rule and its worked example -------------------------------------------------------


def test_the_checksum_is_sha256_of_the_platform_fields_in_order_then_the_secret() -> None:
    """The worked example of docs/adapters/payment-confirmation.md, computed here."""
    signed = _doc()["payload"]["signed"]
    text = (
        "PAYMENT_RESULT|00|VCB01|DVCQG-20261125-000431|8000|VND|FT26329812345678|VCB|"
        "20261125092017|NGUYEN THI MINH ANH nop le phi ho so 000.04.01.H26-261125-0031|demo-secret"
    )
    expected = hashlib.sha256(text.encode()).hexdigest()
    assert expected == "60834a76fa1f9cd35ddfa1f4a3323f24ee01a113b4008f75c78d1e9f64a3be4d"
    assert platform_checksum(signed, SECRET) == expected
    assert _doc()["payload"]["checksum"] == expected


@pytest.mark.parametrize("name", sorted(p.name for p in V2.glob("*.json")))
def test_every_shipped_v2_example_is_valid_and_verifies(name: str) -> None:
    doc = _doc(name)
    assert REGISTRY.validate(doc) == ("payment.confirmed", 2)
    partner = doc["payload"]["partner_code"]
    _checker(**{partner: [SECRET]}).check(doc, 2)  # raises if not


# --- forged and altered confirmations ------------------------------------------------------


def test_a_failed_turned_into_success_with_the_checksum_unchanged_is_refused() -> None:
    failed = _doc("failed-momo.json")
    forged = copy.deepcopy(failed)
    forged["payload"].update(result="success", error_code="00")  # signed strings left as signed
    assert REGISTRY.validate(forged) == ("payment.confirmed", 2)  # the schema cannot tell
    rej = _refusal(_checker(MOMO=[SECRET]), forged)
    assert rej.reason is Reason.CHECKSUM_MISMATCH
    assert "payload.error_code differs from payload.signed.error_code" in rej.detail
    assert failed["payload"]["checksum"] not in rej.detail


def test_a_forgery_that_also_changes_the_signed_strings_breaks_the_checksum() -> None:
    forged = _doc("failed-momo.json")
    forged["payload"].update(result="success", error_code="00")
    forged["payload"]["signed"]["error_code"] = "00"
    rej = _refusal(_checker(MOMO=[SECRET]), forged)
    assert rej.reason is Reason.CHECKSUM_MISMATCH
    assert "does not match the signed fields under any secret of partner MOMO" in rej.detail
    expected = platform_checksum(forged["payload"]["signed"], SECRET)
    for value in (expected, forged["payload"]["checksum"], SECRET):
        assert value not in rej.detail


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", 80000),
        ("reference", "DVCQG-20261125-000999"),
        ("transaction_id", "FT00000000000000"),
        ("bank_code", "CTG"),
        ("paid_at", "2026-11-25T09:20:18+07:00"),
        ("description", "NGUYEN VAN B nop le phi"),
    ],
)
def test_a_canonical_field_that_disagrees_with_its_signed_string_is_refused(
    field: str, value: Any
) -> None:
    doc = _doc()
    doc["payload"][field] = value
    rej = _refusal(_checker(VCB01=[SECRET]), doc)
    assert rej.reason is Reason.CHECKSUM_MISMATCH
    assert f"payload.{field} differs" in rej.detail


def test_the_same_instant_written_with_another_offset_still_agrees() -> None:
    doc = _doc()
    doc["payload"]["paid_at"] = "2026-11-25T02:20:17Z"  # = 09:20:17 in Vietnam
    _checker(VCB01=[SECRET]).check(doc, 2)


def test_a_checksum_made_with_another_partners_secret_is_refused() -> None:
    doc = _doc()
    doc["payload"] = sign_as_platform(doc["payload"], "someone-elses-secret")
    rej = _refusal(_checker(VCB01=[SECRET]), doc)
    assert rej.reason is Reason.CHECKSUM_MISMATCH


# --- rotation, unknown partners, version 1 --------------------------------------------------


def test_while_rotating_a_checksum_made_with_either_secret_verifies() -> None:
    checker = _checker(VCB01=["old-secret", "new-secret"])
    for secret in ("old-secret", "new-secret"):
        doc = _doc()
        doc["payload"] = sign_as_platform(doc["payload"], secret)
        checker.check(doc, 2)
        rej, line = checker.verdict(doc, 2)
        assert rej is None
        which = 1 if secret == "old-secret" else 2
        assert line.startswith(f"checksum: verified (partner VCB01, secret {which} of 2")
    retired = _doc()
    retired["payload"] = sign_as_platform(retired["payload"], "retired-secret")
    assert _refusal(checker, retired).reason is Reason.CHECKSUM_MISMATCH


def test_a_secret_not_yet_set_while_rotating_leaves_the_other_in_use() -> None:
    secrets = {"env:OLD": SECRET}

    def read(ref: str) -> str:
        if ref not in secrets:
            raise UnreadableReference("is not set")
        return secrets[ref]

    payments = Payments(partners={"VCB01": Partner(secrets=("env:OLD", "env:NEW"))})
    checker = PaymentChecksum.from_config(payments, read)
    assert checker.unreadable == {"VCB01": ("secret env:NEW is not set",)}
    assert checker.partners_without_secret == []
    checker.check(_doc(), 2)


def test_a_partner_without_any_secret_is_unverifiable() -> None:
    doc = _doc()
    rej = _refusal(_checker(MOMO=[SECRET]), doc)
    assert rej.reason is Reason.UNVERIFIABLE
    assert "partner VCB01 is not configured" in rej.detail
    unreadable = PaymentChecksum.from_config(
        Payments(partners={"VCB01": Partner(secrets=("env:NOWHERE",))}),
        lambda ref: (_ for _ in ()).throw(UnreadableReference("is not set")),
    )
    assert unreadable.partners_without_secret == ["VCB01"]
    assert "cannot be read on this router" in _refusal(unreadable, doc).detail


def test_a_version_1_confirmation_cannot_be_verified_and_is_refused() -> None:
    v1 = orjson.loads(V1_SUCCESS.read_bytes())
    assert REGISTRY.validate(v1) == ("payment.confirmed", 1)
    rej = _refusal(_checker(VCB01=[SECRET]), v1, 1)
    assert rej.reason is Reason.UNVERIFIABLE
    assert "send version 2" in rej.detail


# --- amounts are integers ------------------------------------------------------------------


def test_an_amount_with_a_zero_fraction_is_invalid_not_a_checksum_alarm() -> None:
    body = orjson.dumps(_doc()).replace(b'"amount":8000,', b'"amount":8000.0,')
    doc = orjson.loads(body)
    assert isinstance(doc["payload"]["amount"], float)
    assert REGISTRY.validate(doc) == ("payment.confirmed", 2)  # draft-07 says 8000.0 is integer
    rej = _refusal(_checker(VCB01=[SECRET]), doc)
    assert rej.reason is Reason.INVALID
    assert rej.detail.startswith("payload.amount: type integer")


def test_result_and_error_code_must_agree_in_the_schema() -> None:
    doc = _doc()
    doc["payload"]["error_code"] = "24"
    with pytest.raises(Rejection) as caught:
        REGISTRY.validate(doc)
    assert caught.value.detail.startswith('payload.error_code: const "00"')
    doc = _doc("failed-momo.json")
    doc["payload"]["error_code"] = "00"
    with pytest.raises(Rejection) as caught:
        REGISTRY.validate(doc)
    assert caught.value.detail.startswith('payload.result: const "success"')
