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

from adapters.kinds.payment_signature import sign_as_platform
from bus.contract.citizen_id import PRE_REFORM_PROVINCES
from bus.contract.ids import uuid7

if TYPE_CHECKING:
    from bus.app import Loaded

VN = timezone(timedelta(hours=7))
DEMO_SECRET = "demo-secret"  # routes.yaml's partner secret, as the demo and tests set it
PLATFORM_ERROR_CODES = {"success": "00", "pending": "09", "failed": "24"}
PENDING_KIND = "payment: pending (reconciled later)"
PORTAL = "000.00.00.G22/portal"
CITIZEN_ID_PROVINCES = sorted(PRE_REFORM_PROVINCES)
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
# Processing notes as agency systems write them (shown to the applicant); a status event
# carries a few of these sentences, so the mix averages 1.5-2 KB per message as on the portal.
STATUS_NOTES = {
    1: [
        "Hồ sơ đã được đăng ký trực tuyến trên Cổng Dịch vụ công quốc gia.",
        "Hệ thống đã ghi nhận đầy đủ thành phần hồ sơ theo danh mục của thủ tục.",
        "Công dân vui lòng theo dõi trạng thái hồ sơ qua tài khoản định danh điện tử.",
    ],
    2: [
        "Hồ sơ đã được tiếp nhận và chuyển xử lý",
        "Bộ phận Một cửa đã kiểm tra tính hợp lệ của thành phần hồ sơ và tiếp nhận.",
        "Thời hạn giải quyết được tính từ ngày tiếp nhận hồ sơ hợp lệ theo quy định.",
        "Phiếu tiếp nhận và hẹn trả kết quả đã được gửi đến địa chỉ thư điện tử của công dân.",
    ],
    4: [
        "Hồ sơ đang được chuyên viên phòng chuyên môn thẩm định theo quy trình nội bộ.",
        "Đơn vị xử lý đã đề nghị cơ quan liên quan cung cấp thông tin để xác minh.",
        "Kết quả xác minh sẽ được cập nhật trên hệ thống ngay khi có ý kiến phản hồi.",
        "Trường hợp cần bổ sung giấy tờ, cơ quan sẽ thông báo một lần bằng văn bản.",
    ],
    9: [
        "Hồ sơ đã được xử lý xong và trình lãnh đạo ký duyệt kết quả.",
        "Kết quả giải quyết thủ tục hành chính đã được số hóa và lưu vào kho dữ liệu.",
        "Công dân có thể nhận kết quả trực tuyến hoặc tại Bộ phận Một cửa.",
    ],
    10: [
        "Kết quả đã được trả cho công dân theo hình thức đã đăng ký khi nộp hồ sơ.",
        "Bản điện tử của kết quả có giá trị pháp lý như bản giấy theo quy định hiện hành.",
        "Cảm ơn công dân đã sử dụng dịch vụ công trực tuyến; mời đánh giá mức độ hài lòng.",
    ],
}
COMMON_NOTES = [
    "Mọi thắc mắc xin liên hệ đường dây nóng của cơ quan giải quyết trong giờ hành chính.",
    "Thông tin cá nhân của công dân được bảo vệ theo quy định về bảo vệ dữ liệu cá nhân.",
    "Căn cứ Nghị định số 61/2018/NĐ-CP về thực hiện cơ chế một cửa, một cửa liên thông.",
    "Căn cứ Nghị định số 45/2020/NĐ-CP về thực hiện thủ tục hành chính trên môi trường điện tử.",
    "Hồ sơ được luân chuyển giữa các phòng ban qua hệ thống quản lý văn bản điện tử.",
    "Trạng thái hồ sơ được đồng bộ tự động lên Cổng Dịch vụ công quốc gia.",
    "Công dân nhận thông báo qua tin nhắn và thư điện tử khi hồ sơ thay đổi trạng thái.",
    "Đề nghị công dân giữ số điện thoại liên lạc để cơ quan trao đổi khi cần thiết.",
]
SUMMARY_PARTS = [
    "Người nộp cam kết nội dung kê khai là đúng sự thật và chịu trách nhiệm trước pháp luật.",
    "Đề nghị cơ quan có thẩm quyền xem xét, giải quyết theo đúng thời hạn quy định.",
    "Hồ sơ nộp trực tuyến qua Cổng Dịch vụ công quốc gia, xác thực bằng tài khoản định danh.",
    "Kết quả đề nghị trả qua dịch vụ bưu chính công ích đến địa chỉ thường trú.",
    "Thành phần hồ sơ gồm tờ khai theo mẫu và các giấy tờ chứng minh kèm theo.",
    "Người nộp đã thanh toán phí, lệ phí trực tuyến qua nền tảng thanh toán của Cổng.",
]
DOCUMENT_NAMES = [
    "Tờ khai",
    "Bản sao CCCD",
    "Giấy xác nhận cư trú",
    "Bản vẽ thiết kế",
    "Hợp đồng",
]


@dataclass(frozen=True, slots=True)
class Generated:
    """One message of demo traffic and what kind of case it is."""

    kind: str  # e.g. "dossier.submitted", "invalid", "unroutable", "old-unit-codes"
    body: bytes
    message_id: str  # "" when the body is not JSON (the sender then assigns one)


class TrafficGenerator:
    """Deterministic (for a seed) stream of realistic messages."""

    def __init__(
        self,
        seed: int,
        loaded: Loaded,
        *,
        oversized: bool = True,
        status_edges: bool = False,
        dossier_v2: bool = True,
    ) -> None:
        self.rng = random.Random(seed)
        self.oversized = oversized  # False: no 1.1 MB bodies (benchmarks want 1-3 KB traffic)
        # False: every dossier in version 1, as the traffic was before version 2 (so a
        # benchmark can compare CPU per message with an older commit on the same mix)
        self.v2_dossiers = dossier_v2
        # True (the demo): pairs of status updates for one dossier that the lifecycle judges
        # (a late "received", an impossible step), whose fate the dispatcher decides per target
        self.status_edges = status_edges
        self._queued: list[Generated] = []  # the second of a pair, sent right after the first
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

    def _note(self, status: int) -> str:
        """A processing note of a few sentences, as agency systems write them."""
        r = self.rng
        own = STATUS_NOTES[status]
        sentences = r.sample(own, min(len(own), r.randint(2, 4)))
        sentences += r.sample(COMMON_NOTES, r.randint(4, 7))
        return " ".join(sentences)

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
        for i in range(r.randint(1, 6)):
            content = f"{dossier_no}/{i}".encode()
            documents.append(
                {
                    "name": r.choice(DOCUMENT_NAMES) + f" ({i + 1})",
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
            "summary": " ".join(
                [f"Đề nghị giải quyết thủ tục {name.lower()}.", *r.sample(SUMMARY_PARTS, 3)]
            ),
            "documents": documents,
        }
        if fee:
            payload["fees"] = [{"kind": "fee", "amount": fee, "description": "Lệ phí"}]
        return self._envelope("dossier.submitted", PORTAL, payload, dossier_no)

    def dossier_v2(
        self, *, organisation: bool = False, impossible_id: bool = False
    ) -> dict[str, Any]:
        """A dossier in version 2: owner with a plausible id (or an impossible one), mobile or
        landline, service level, result delivery, a fee linked to its payment; or an
        organisation's dossier handed in at a counter, with its representative and no phone."""
        r = self.rng
        doc = self.dossier()
        doc["version"] = 2
        payload = doc["payload"]
        applicant = payload["applicant"]
        applicant["id_number"] = self._citizen_id()
        if r.random() < 0.2:  # a landline: Hà Nội's 024 + 8 digits, or Đà Nẵng's 0236 + 7
            applicant["phone"] = r.choice(["024", "0236"]) + f"{r.randint(0, 9_999_999):07d}"
            if applicant["phone"].startswith("024"):
                applicant["phone"] += str(r.randint(0, 9))
        if impossible_id:
            applicant["id_number"] = "003" + applicant["id_number"][3:]  # 03: no province
        payload["service_level"] = r.choice(["full_online", "partial_online"])
        payload["result_delivery"] = r.choice(["online", "online", "postal", "at_counter"])
        for fee in payload.get("fees", ()):
            fee["payment_reference"] = f"DVCQG-{self.now:%y%m%d}-{r.randint(0, 999_999):06d}"
        if organisation:
            del applicant["phone"]
            applicant.update(
                type="organisation",
                full_name=f"Công ty TNHH {r.choice(STREETS)}",
                tax_code=f"0{r.randint(100_000_000, 999_999_999)}",
                representative={
                    "full_name": self._name(),
                    "role": r.choice(["Giám đốc", "Chủ tịch HĐQT", "Người được ủy quyền"]),
                    "id_number": self._citizen_id(),
                },
            )
            del applicant["id_number"]
            payload.update(channel="direct", received_at=payload["submitted_at"])
            del payload["service_level"]
        return doc

    def _citizen_id(self) -> str:
        """A 12-digit id with a real structure: province of birth, century and year, sequence."""
        r = self.rng
        year = r.randint(1940, 2007)
        century = (year - 1900) // 100
        return (
            f"0{r.choice(CITIZEN_ID_PROVINCES)}{century * 2 + r.randint(0, 1)}"
            f"{year % 100:02d}{r.randint(0, 999_999):06d}"
        )

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
            "note": self._note(STATUS_FLOW[step]),
        }
        if step:
            payload["previous_status"] = STATUS_FLOW[step - 1]
        return self._envelope(
            "dossier.status_changed", source or agency, payload, payload["dossier_no"]
        )

    def payment(
        self,
        source: str = PAYMENT_PLATFORM,
        *,
        agency: str | None = None,
        result: str = "success",
        version: int = 2,
    ) -> dict[str, Any]:
        """A confirmation signed as the platform signs it (v2); ``version=1``: the old form."""
        r = self.rng
        province = self._province()
        dossier_no = self._dossier_no(province)
        amount = r.choice([8000, 20000, 75000, 100000, 150000, 12_000_000_000])
        fields = {
            "reference": f"TT{self.now:%Y%m%d}{self.seq:07d}",
            "dossier_no": dossier_no,
            "agency": agency or PROVINCE_AGENCY[province],
            "transaction_id": f"{r.choice(BANKS)}{r.getrandbits(48):012d}",
            "partner_code": "DVCQG",
            "bank_code": r.choice(BANKS),
            "amount": amount,
            "currency": "VND",
            "paid_at": self._time(r.randint(0, 10)),
            "result": result,
            "error_code": PLATFORM_ERROR_CODES[result],
            "procedure_code": r.choice(PROCEDURES)[0],
            "description": (
                f"Thanh toán lệ phí hồ sơ {dossier_no} qua Cổng Dịch vụ công quốc gia, "
                f"mã tham chiếu TT{self.now:%Y%m%d}{self.seq:07d}, nộp phí và lệ phí giải quyết "
                "thủ tục hành chính theo thông báo của cơ quan tiếp nhận hồ sơ"
            ),
            "payer": {"name": self._name()},
        }
        joined = "|".join(
            str(fields[k]) for k in ("reference", "transaction_id", "amount", "paid_at")
        )
        fields["description"] += f", người nộp {fields['payer']['name']}"
        if version == 1:  # v1 signed only these fields; the router refuses it unverifiable
            fields["checksum"] = hashlib.sha256(f"{joined}|{DEMO_SECRET}".encode()).hexdigest()
        else:
            fields = sign_as_platform(fields, DEMO_SECRET)
        doc = self._envelope("payment.confirmed", source, fields, dossier_no)
        doc["version"] = version
        return doc

    def forged_payment(self) -> dict[str, Any]:
        """A failed payment turned into a success on the way, its checksum left as signed."""
        doc = self.payment(result="failed")
        doc["payload"].update(result="success", error_code="00")
        return doc

    def payment_with_float_amount(self) -> dict[str, Any]:
        """An amount written 8000.0: refused at validation, not as a false checksum alarm."""
        doc = self.payment()
        doc["payload"]["amount"] = float(doc["payload"]["amount"])
        return doc

    def _with_old_address(self, old: tuple[str, str]) -> dict[str, Any]:
        """A dossier whose applicant address still carries pre-1 July 2025 codes."""
        province, commune = old
        doc = self.dossier(province=self.units.successor_province(province) or "01")
        address = doc["payload"]["applicant"]["address"]
        address["province_code"], address["commune_code"] = province, commune
        return doc

    # --- the mix ---------------------------------------------------------------------

    def status_pair(self, late: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        """Two updates of one dossier: processing then a late "received" (history at a target
        that keeps it, superseded at one that keeps the current state), or result returned
        then processing (an impossible step: ``invalid_transition``)."""
        first = self.status()
        second = self.status()
        dossier_no, agency = first["payload"]["dossier_no"], first["payload"]["agency"]
        for doc in (first, second):
            doc["payload"].update(dossier_no=dossier_no, agency=agency)
            doc["payload"].pop("previous_status", None)
            doc["correlation_id"] = dossier_no
            doc["source"] = first["source"]
        steps = ((4, 2), (2, 1)) if late else ((10, 4), (4, 5))  # (status, sequence)
        times = (self._time(5), self._time(30)) if late else (self._time(20), self._time(5))
        for doc, (status, sequence), at in zip((first, second), steps, times, strict=True):
            doc["payload"].update(status=status, sequence=sequence, status_at=at)
            doc["payload"]["note"] = self._note(status)
        return first, second

    def one(self) -> Generated:
        if self._queued:
            return self._queued.pop(0)
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
        if roll < 0.032 and self.oversized:
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
            return self._one_dossier(roll)
        if roll < 0.45:
            return self._one_payment(roll)
        if self.status_edges and roll < 0.46:
            late = roll < 0.455
            kind = (
                "status: late received (history or superseded)"
                if late
                else ("status: result returned → processing (invalid_transition)")
            )
            first, second = self.status_pair(late)
            self._queued.append(_gen(kind, second))
            return _gen(kind, first)
        return _gen("dossier.status_changed", self.status())

    def _one_dossier(self, roll: float) -> Generated:
        """Dossiers from the portal: versions 1 and 2 side by side, and v2's edge cases."""
        if not self.v2_dossiers:
            return _gen("dossier.submitted", self.dossier())
        if roll < 0.081:
            return _gen("dossier v2: impossible id number", self.dossier_v2(impossible_id=True))
        if roll < 0.085:
            doc = self.dossier_v2(organisation=True)
            return _gen("dossier v2: organisation at a counter, no phone", doc)
        if roll < 0.19:
            return _gen("dossier.submitted v2", self.dossier_v2())
        return _gen("dossier.submitted", self.dossier())

    def _one_payment(self, roll: float) -> Generated:
        """Payments, and within their share the platform's edge cases (~2.5% of payments)."""
        if roll < 0.301:
            return _gen("payment: forged failed → success", self.forged_payment())
        if roll < 0.302:
            return _gen("payment: v1 (unverifiable)", self.payment(version=1))
        if roll < 0.3025:
            return _gen("payment: amount 8000.0", self.payment_with_float_amount())
        if roll < 0.304:
            doc = self.payment(agency=UNROUTED_AGENCY)
            return _gen("payment: agency with no route", doc)
        if roll < 0.306:
            return _gen(PENDING_KIND, self.payment(result="pending"))
        return _gen("payment.confirmed", self.payment())


def _gen(kind: str, doc: dict[str, Any]) -> Generated:
    return Generated(kind, orjson.dumps(doc), doc["id"])


def generate(
    n: int, *, seed: int, loaded: Loaded, oversized: bool = True, status_edges: bool = False
) -> list[Generated]:
    """``n`` messages of the realistic mix (``oversized=False``: without the 1.1 MB bodies;
    ``status_edges``: with status pairs the dispatcher may park, as the demo shows them)."""
    gen = TrafficGenerator(seed, loaded, oversized=oversized, status_edges=status_edges)
    return [gen.one() for _ in range(n)]
