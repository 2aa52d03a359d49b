"""Realistic portal traffic for the demo and the benchmarks.

The mix follows DOMAIN.md: status updates are the bulk (~60%), then dossiers (~25%) and
payments (~15%), spread over the 34 current provinces and a few ministries; a few percent
are things the bus must refuse (schema violations, broken JSON, oversized bodies,
unauthorised senders, dossiers for an agency nobody routes, pre-reform unit codes, some of
them ambiguous). Names and numbers are invented; agency identifiers other than Hà Nội's
(H26) and TP Hồ Chí Minh's (H29) are illustrative.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import orjson

from bus.ids import uuid7

if TYPE_CHECKING:
    from bus.app import Loaded

VN = timezone(timedelta(hours=7))
PORTAL = "000.00.00.G22/portal"
PAYMENT_PLATFORM = "000.00.00.G22/payment"

# Illustrative electronic identifiers of the 34 provincial people's committees (current codes).
PROVINCE_AGENCY = {
    "01": "000.00.00.H26",
    "79": "000.00.00.H29",
    "48": "000.00.00.H48",
    "31": "000.00.00.H31",
    "92": "000.00.00.H92",
    "46": "000.00.00.H46",
    "04": "000.00.00.H04",
    "08": "000.00.00.H08",
    "11": "000.00.00.H11",
    "12": "000.00.00.H12",
    "14": "000.00.00.H14",
    "15": "000.00.00.H15",
    "19": "000.00.00.H19",
    "20": "000.00.00.H20",
    "22": "000.00.00.H22",
    "24": "000.00.00.H24",
    "25": "000.00.00.H25",
    "33": "000.00.00.H33",
    "37": "000.00.00.H37",
    "38": "000.00.00.H38",
    "40": "000.00.00.H40",
    "42": "000.00.00.H42",
    "44": "000.00.00.H44",
    "51": "000.00.00.H51",
    "52": "000.00.00.H52",
    "56": "000.00.00.H56",
    "66": "000.00.00.H66",
    "68": "000.00.00.H68",
    "75": "000.00.00.H75",
    "80": "000.00.00.H80",
    "82": "000.00.00.H82",
    "86": "000.00.00.H86",
    "91": "000.00.00.H91",
    "96": "000.00.00.H96",
}
# Population-weighted-ish: the two big cities carry the most traffic.
PROVINCE_WEIGHT = {"01": 12, "79": 14, "48": 3, "31": 4, "92": 3, "40": 3, "38": 3}

MINISTRY_PROCEDURES = {
    # ministry identifier -> procedures it receives (illustrative)
    "000.00.00.G12": [("1.001193", "Cấp phiếu lý lịch tư pháp"), ("2.000635", "Đăng ký quốc tịch")],
}
UNROUTED_AGENCY = "000.00.00.G99"  # a ministry with no target in routes.yaml

PROCEDURES = [
    ("1.012889", "Đăng ký khai sinh", 0),
    ("1.001193", "Cấp bản sao trích lục hộ tịch", 8000),
    ("2.000635", "Chứng thực bản sao từ bản chính", 2000),
    ("1.004227", "Cấp giấy phép xây dựng nhà ở riêng lẻ", 75000),
    ("1.001612", "Đăng ký thành lập hộ kinh doanh", 100000),
    ("2.001023", "Đăng ký biến động quyền sử dụng đất", 150000),
    ("1.000894", "Cấp đổi giấy phép lái xe", 135000),
    ("3.000123", "Xác nhận tình trạng hôn nhân", 0),
]
FAMILY = [
    "Nguyễn",
    "Trần",
    "Lê",
    "Phạm",
    "Hoàng",
    "Huỳnh",
    "Phan",
    "Vũ",
    "Võ",
    "Đặng",
    "Bùi",
    "Đỗ",
    "Hồ",
    "Ngô",
    "Dương",
    "Lý",
]
MIDDLE = ["Văn", "Thị", "Đức", "Minh", "Thu", "Ngọc", "Hữu", "Thanh", "Quang", "Kim"]
GIVEN = [
    "An",
    "Bình",
    "Chi",
    "Dũng",
    "Hà",
    "Hải",
    "Hạnh",
    "Hoa",
    "Hùng",
    "Hương",
    "Lan",
    "Linh",
    "Long",
    "Mai",
    "Nam",
    "Phương",
    "Quân",
    "Sơn",
    "Tâm",
    "Thảo",
    "Trang",
    "Tuấn",
    "Vy",
]
STREETS = [
    "Lê Lợi",
    "Trần Hưng Đạo",
    "Nguyễn Huệ",
    "Hai Bà Trưng",
    "Lý Thường Kiệt",
    "Quang Trung",
    "Hùng Vương",
    "Điện Biên Phủ",
]
BANKS = ["VCB", "CTG", "VBA", "BIDV", "NAPAS", "VNPAY", "MOMO", "PAYOO", "VNPTPAY"]
HANDLER_UNITS = [
    "Bộ phận Một cửa",
    "Phòng Tư pháp",
    "Phòng Tài nguyên và Môi trường",
    "Văn phòng đăng ký đất đai",
]
STATUS_FLOW = [1, 2, 4, 9, 10]


@dataclass(frozen=True, slots=True)
class Generated:
    """One message of demo traffic and what kind of case it is."""

    kind: str  # e.g. "dossier.submitted", "invalid", "unroutable", "old-unit-codes"
    body: bytes
    message_id: str  # "" when the body is not JSON (the sender then assigns one)


class TrafficGenerator:
    """Deterministic (for a seed) stream of realistic messages."""

    def __init__(self, seed: int, loaded: Loaded) -> None:
        self.rng = random.Random(seed)
        self.units = units = loaded.units
        communes = units.current_communes()
        self.communes_by_province: dict[str, list[str]] = {}
        for code, (_name, province) in sorted(communes.items()):
            self.communes_by_province.setdefault(province, []).append(code)
        provinces = sorted(self.communes_by_province)
        self.provinces = provinces
        self.province_weights = [PROVINCE_WEIGHT.get(p, 1) for p in provinces]
        retired = units.retired_communes()
        # (old province, old commune) pairs as pre-reform records still carry them.
        self.translatable = sorted(
            (province, c)
            for c, (province, cands) in retired.items()
            if len(cands) == 1 and units.translate(province, c).translated
        )
        self.ambiguous = sorted(
            (province, c) for c, (province, cands) in retired.items() if len(cands) > 1
        )
        self.seq = 0
        self.now = datetime.now(VN).replace(microsecond=0)

    # --- building blocks -------------------------------------------------------------

    def _name(self) -> str:
        r = self.rng
        return f"{r.choice(FAMILY)} {r.choice(MIDDLE)} {r.choice(GIVEN)}"

    def _time(self, minutes_ago: int = 0) -> str:
        return (self.now - timedelta(minutes=minutes_ago)).isoformat()

    def _dossier_no(self, province: str) -> str:
        self.seq += 1
        office = f"000.00.{self.rng.randint(10, 99)}.H{PROVINCE_AGENCY[province][-2:]}"
        return f"{office}-{self.now:%y%m%d}-{self.seq:04d}"

    def _envelope(
        self, type_: str, source: str, payload: dict[str, Any], dossier_no: str | None
    ) -> dict[str, Any]:
        r = self.rng
        doc = {
            "id": uuid7(),
            "type": type_,
            "version": 1,
            "source": source,
            "occurred_at": self._time(r.randint(0, 5)),
            "traceparent": f"00-{r.getrandbits(128):032x}-{r.getrandbits(64):016x}-01",
            "payload": payload,
        }
        if dossier_no:
            doc["correlation_id"] = dossier_no
        return doc

    def _province(self) -> str:
        return self.rng.choices(self.provinces, self.province_weights)[0]

    # --- the three message types ------------------------------------------------------

    def dossier(
        self, province: str | None = None, commune: str | None = None, agency: str | None = None
    ) -> dict[str, Any]:
        r = self.rng
        province = province or self._province()
        commune = commune or r.choice(self.communes_by_province[province])
        code, name, fee = r.choice(PROCEDURES)
        if agency and agency in MINISTRY_PROCEDURES:
            code, name = r.choice(MINISTRY_PROCEDURES[agency])
        dossier_no = self._dossier_no(province)
        documents = []
        for i in range(r.randint(1, 4)):
            content = f"{dossier_no}/{i}".encode()
            documents.append(
                {
                    "name": r.choice(
                        [
                            "Tờ khai",
                            "Bản sao CCCD",
                            "Giấy xác nhận cư trú",
                            "Bản vẽ thiết kế",
                            "Hợp đồng",
                        ]
                    )
                    + f" ({i + 1})",
                    "url": f"https://dichvucong.gov.vn/files/{dossier_no}/{i + 1}.pdf",
                    "sha256": hashlib.sha256(content).hexdigest(),
                    "size_bytes": r.randint(40_000, 5_000_000),
                }
            )
        payload: dict[str, Any] = {
            "dossier_no": dossier_no,
            "procedure_code": code,
            "procedure_name": name,
            "receiving_agency": agency or PROVINCE_AGENCY[province],
            "submitted_at": self._time(r.randint(1, 30)),
            "channel": "online",
            "applicant": {
                "type": "citizen",
                "full_name": self._name(),
                "id_number": f"{r.randint(1, 96):03d}{r.randint(0, 999_999_999):09d}",
                "phone": f"09{r.randint(0, 99_999_999):08d}",
                "email": f"congdan{r.randint(1, 99999)}@example.vn",
                "address": {
                    "street": f"Số {r.randint(1, 300)} {r.choice(STREETS)}",
                    "commune_code": commune,
                    "province_code": province,
                },
            },
            "summary": f"Đề nghị giải quyết thủ tục {name.lower()}",
            "documents": documents,
        }
        if fee:
            payload["fees"] = [{"kind": "fee", "amount": fee, "description": "Lệ phí"}]
        return self._envelope("dossier.submitted", PORTAL, payload, dossier_no)

    def status(self, source: str | None = None) -> dict[str, Any]:
        r = self.rng
        province = self._province()
        agency = PROVINCE_AGENCY[province]
        step = r.randrange(len(STATUS_FLOW))
        payload = {
            "dossier_no": self._dossier_no(province),
            "agency": agency,
            "procedure_code": r.choice(PROCEDURES)[0],
            "status": STATUS_FLOW[step],
            "sequence": step,
            "status_at": self._time(r.randint(0, 60)),
            "handler": {"name": self._name(), "unit": r.choice(HANDLER_UNITS)},
            "note": "Hồ sơ đã được tiếp nhận và chuyển xử lý",
        }
        if step:
            payload["previous_status"] = STATUS_FLOW[step - 1]
        return self._envelope(
            "dossier.status_changed", source or agency, payload, payload["dossier_no"]
        )

    def payment(self, source: str = PAYMENT_PLATFORM) -> dict[str, Any]:
        r = self.rng
        province = self._province()
        dossier_no = self._dossier_no(province)
        amount = r.choice([8000, 20000, 75000, 100000, 150000, 12_000_000_000])
        fields = {
            "reference": f"TT{self.now:%Y%m%d}{self.seq:07d}",
            "dossier_no": dossier_no,
            "agency": PROVINCE_AGENCY[province],
            "transaction_id": f"{r.choice(BANKS)}{r.getrandbits(48):012d}",
            "partner_code": "DVCQG",
            "bank_code": r.choice(BANKS),
            "amount": amount,
            "currency": "VND",
            "paid_at": self._time(r.randint(0, 10)),
            "result": "success",
            "error_code": "00",
            "description": f"Thanh toán lệ phí hồ sơ {dossier_no}",
            "payer": {"name": self._name()},
        }
        joined = "|".join(
            str(fields[k]) for k in ("reference", "transaction_id", "amount", "paid_at")
        )
        fields["checksum"] = hashlib.sha256(f"{joined}|demo-secret".encode()).hexdigest()
        return self._envelope("payment.confirmed", source, fields, dossier_no)

    def _with_old_address(self, old: tuple[str, str]) -> dict[str, Any]:
        """A dossier whose applicant address still carries pre-1 July 2025 codes."""
        province, commune = old
        doc = self.dossier(province=self.units.successor_province(province) or "01")
        address = doc["payload"]["applicant"]["address"]
        address["province_code"], address["commune_code"] = province, commune
        return doc

    # --- the mix ---------------------------------------------------------------------

    def one(self) -> Generated:
        r = self.rng
        roll = r.random()
        if roll < 0.02:
            doc = self.dossier()
            doc["payload"]["applicant"]["id_number"] = "12345"  # neither 12 nor 9 digits
            return _gen("invalid", doc)
        if roll < 0.025:
            doc = self.status()
            doc["payload"]["status"] = 11
            return _gen("invalid", doc)
        if roll < 0.03:
            return Generated("malformed", b'{"id": "broken", "type": "dossier.submitted", ', "")
        if roll < 0.032:
            doc = self.dossier()
            doc["payload"]["summary"] = "x" * 1_100_000
            return _gen("too-large", doc)
        if roll < 0.042:
            return _gen("unauthorised", self.payment(source="000.00.00.H29"))
        if roll < 0.052:
            return _gen("unroutable", self.dossier(agency=UNROUTED_AGENCY))
        if roll < 0.062 and self.translatable:
            return _gen("old-unit-codes", self._with_old_address(r.choice(self.translatable)))
        if roll < 0.067 and self.ambiguous:
            return _gen("ambiguous-unit", self._with_old_address(r.choice(self.ambiguous)))
        if roll < 0.08:
            agency = r.choice(sorted(MINISTRY_PROCEDURES))
            return _gen("dossier.submitted (ministry)", self.dossier(agency=agency))
        if roll < 0.30:
            return _gen("dossier.submitted", self.dossier())
        if roll < 0.45:
            return _gen("payment.confirmed", self.payment())
        return _gen("dossier.status_changed", self.status())


def _gen(kind: str, doc: dict[str, Any]) -> Generated:
    return Generated(kind, orjson.dumps(doc), doc["id"])


def generate(n: int, *, seed: int, loaded: Loaded) -> list[Generated]:
    """``n`` messages of the realistic mix."""
    gen = TrafficGenerator(seed, loaded)
    return [gen.one() for _ in range(n)]
