"""Reference adapter ``onestop-soap``: a provincial one-stop system with a SOAP interface.

The generic SOAP kind, preconfigured for the liên thông service of
``config/wsdl/motcua-lienthong.wsdl`` (the interface a provincial system built around 2012
exposes): ``dossier.submitted`` → ``TiepNhanHoSo``, ``payment.confirmed`` →
``BaoCaoThanhToan``; WS-Security UsernameToken with password digest and a timestamp
(``credentials.username`` / ``password``); the answer's ``KetQua/MaLoi`` says ``0``
accepted, ``2`` already recorded (a repeat: success), ``9`` busy (transient), anything else
refused with ``MoTaLoi``; ``SoBienNhan`` is the receipt number. Dates are
``yyyyMMddHHmmss`` in Vietnam time. A target may override any of it in ``options``
(``port: MotCuaSoap12`` for the SOAP 1.2 binding, another WSDL of the same shape, ...).
See docs/adapters/onestop-soap.md.
"""

from __future__ import annotations

from typing import Any, ClassVar

from adapters.kinds.soap import SoapAdapter

VN_TIME = "yyyyMMddHHmmss"

DOSSIER = {
    "HoSo": {
        "MaHoSo": "payload.dossier_no",
        "MaTTHC": "payload.procedure_code",
        "TenTTHC": "payload.procedure_name",
        "MaCoQuanTiepNhan": "payload.receiving_agency",
        "NgayNopHoSo": {"from": "payload.submitted_at", "format": VN_TIME},
        "NgayHenTra": {"from": "payload.due_at", "format": VN_TIME},
        "HinhThucNop": "payload.channel",
        "NguoiNop": {
            "LoaiDoiTuong": "payload.applicant.type",
            "HoTen": "payload.applicant.full_name",
            "SoDinhDanh": "payload.applicant.id_number",
            "MaSoThue": "payload.applicant.tax_code",
            # required by the WSDL; dossier.submitted v2 has none for organisations and
            # counter dossiers: an empty element then (the element is required, not its text)
            "SoDienThoai": {"from": "payload.applicant.phone", "default": ""},
            "Email": "payload.applicant.email",
            "DiaChi": {
                "DiaChiChiTiet": "payload.applicant.address.street",
                "MaXa": "payload.applicant.address.commune_code",
                "MaTinh": "payload.applicant.address.province_code",
            },
        },
        "TrichYeu": "payload.summary",
        "DanhSachGiayTo": {
            "GiayTo": {
                "each": "payload.documents",
                "fields": {
                    "TenGiayTo": "name",
                    "DuongDan": "url",
                    "MaBam": "sha256",
                    "KichThuoc": "size_bytes",
                },
            }
        },
        "DanhSachPhi": {
            "Phi": {
                "each": "payload.fees",
                "fields": {"Loai": "kind", "SoTien": "amount", "MoTa": "description"},
            }
        },
    }
}

PAYMENT = {
    "ThanhToan": {
        "MaThamChieu": "payload.reference",
        "MaHoSo": "payload.dossier_no",
        "MaDonVi": "payload.agency",
        "MaTTHC": "payload.procedure_code",
        "MaGiaoDich": "payload.transaction_id",
        "MaDoiTac": "payload.partner_code",
        "MaNganHang": "payload.bank_code",
        "SoTien": "payload.amount",
        "LoaiTienTe": "payload.currency",
        "ThoiGianThanhToan": {"from": "payload.paid_at", "format": VN_TIME},
        "KetQuaThanhToan": "payload.result",
        "MaLoiThanhToan": "payload.error_code",
        "NoiDung": "payload.description",
        "ChuoiKiemTra": "payload.checksum",
    }
}

DEFAULTS: dict[str, Any] = {
    "wsdl": "motcua-lienthong.wsdl",
    "service": "MotCuaService",
    "port": "MotCuaSoap",
    "operations": {
        "dossier.submitted": {"operation": "TiepNhanHoSo", "parameters": DOSSIER},
        "payment.confirmed": {"operation": "BaoCaoThanhToan", "parameters": PAYMENT},
    },
    "wsse": {"username_token": True, "password_digest": True, "timestamp": True, "ttl": 300},
    "response": {
        "result_code": {
            "element": "MaLoi",
            "success": ["0", "2"],
            "transient": ["9"],
            "message_element": "MoTaLoi",
        },
        "reference": ["SoBienNhan"],
    },
}


class OneStopSoapAdapter(SoapAdapter):
    """Dossiers and payment reports to a provincial one-stop system over SOAP."""

    kind: ClassVar[str] = "onestop-soap"
    default_options: ClassVar[dict[str, Any]] = DEFAULTS
