"""The SOAP status update (``DongBoTrangThaiHoSo``) → the canonical ``dossier.status_changed``.

A SOAP-era one-stop system is built from a WSDL: its toolkit (.NET ``wsdl.exe``, Axis,
JAX-WS, PHP SoapClient) turns typed elements into classes and fills them in. It does not
build a JSON document and escape it into a string element; a "JSON in a CDATA" operation
would also leave its schema unchecked by the toolkit and by us until after parsing. So the
operation carries the envelope as XML elements, in the portal's own names (the schemas'
``x-vi-name``) and its ``yyyyMMddHHmmss`` Vietnam-time dates, which is what these systems
already produce for the portal; the gateway validates it against the WSDL's XSD, converts it
field by field, and the result is checked by the same JSON Schemas as any other message.

The conversion is deterministic (same elements → same bytes), so a resend of the same
message is recognised as one (same id, same body) by the gateway's Idempotency-Key and
message-id steps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from lxml import etree

from adapters.soapns import BUS_HEADERS
from bus.contract.platform_time import platform_moment
from bus.ingress.refusals import Refusal, Refused

NS = "urn:dvcbus:ingress:v1"
OPERATION = "DongBoTrangThaiHoSo"
MESSAGE_TYPE = "dossier.status_changed"
VERSION = 1
_XS = "http://www.w3.org/2001/XMLSchema"


@dataclass(frozen=True, slots=True)
class Field:
    """One element of the request and where its value goes in the envelope."""

    element: str  # path below the operation element, e.g. "TrangThai/SoThuTu"
    path: str  # canonical JSON path, e.g. "payload.sequence"
    kind: str = "text"  # text | int | time


# In the envelope's order; the XSD gives the elements' order and which are required.
FIELDS = (
    Field("MaThongDiep", "id"),
    Field("HeThongGui", "source"),
    Field("ThoiDiemPhatSinh", "occurred_at", "time"),
    Field("TrangThai/MaHoSo", "payload.dossier_no"),
    Field("TrangThai/MaDonVi", "payload.agency"),
    Field("TrangThai/MaTTHC", "payload.procedure_code"),
    Field("TrangThai/TrangThaiHoSo", "payload.status", "int"),
    Field("TrangThai/TrangThaiTruoc", "payload.previous_status", "int"),
    Field("TrangThai/SoThuTu", "payload.sequence", "int"),
    Field("TrangThai/ThoiDiemXuLy", "payload.status_at", "time"),
    Field("TrangThai/ThongTinXuLy/NguoiXuLy", "payload.handler.name"),
    Field("TrangThai/ThongTinXuLy/DonViXuLy", "payload.handler.unit"),
    Field("TrangThai/NoiDungXuLy", "payload.note"),
    Field("TrangThai/NgayHenTra", "payload.due_at", "time"),
    Field("TrangThai/DuongDanKetQua", "payload.result_url"),
)
ELEMENT_OF = {f.path: f.element for f in FIELDS}

# lxml quotes the offending value in some messages; a refusal never repeats a value.
_QUOTED_VALUE = re.compile(r"'[^']*' is not")
_THE_VALUE = re.compile(r"The value '[^']*'")
_NAMESPACE = re.compile(r"\{[^}]*\}")


def load_xsd(wsdl: Path) -> etree.XMLSchema:
    """The XSD of the WSDL's types, compiled once at start (no network, no include)."""
    tree = etree.parse(str(wsdl), etree.XMLParser(resolve_entities=False, no_network=True))
    schema = tree.find(f".//{{{_XS}}}schema")
    if schema is None:
        raise ValueError(f"{wsdl} has no xs:schema in its types")
    return etree.XMLSchema(etree.fromstring(etree.tostring(schema)))


def vietnam_time(text: str) -> str | None:
    """``yyyyMMddHHmmss`` (Vietnam time) as RFC 3339 with ``+07:00``; None if no such time."""
    moment = platform_moment(text)
    return None if moment is None else moment.isoformat()


def check_against_xsd(xsd: etree.XMLSchema, operation: etree._Element) -> None:
    """Refuse ``invalid`` with each XSD problem's element and rule (never its value)."""
    if xsd.validate(operation):
        return
    errors = []
    for error in list(xsd.error_log)[:20]:  # type: ignore[call-overload]  # lxml-stubs: no __iter__
        message = _NAMESPACE.sub("", error.message)
        message = _THE_VALUE.sub("The value", _QUOTED_VALUE.sub("is not", message))
        errors.append(
            {"path": "$", "element": _element_path(error.path), "rule": "xsd", "expected": message}
        )
    raise Refused(Refusal.INVALID, f"the {OPERATION} request does not match the WSDL's XSD", errors)


def _element_path(xpath: str | None) -> str:
    """``/soap:Envelope/soap:Body/t:DongBoTrangThaiHoSo/t:TrangThai[1]`` → from the operation
    on, without prefixes or positions: ``DongBoTrangThaiHoSo/TrangThai``."""
    names = [
        _NAMESPACE.sub("", part).split(":")[-1].split("[")[0] for part in (xpath or "").split("/")
    ]
    names = [n for n in names if n]
    start = names.index(OPERATION) if OPERATION in names else 0
    return "/".join(names[start:]) or OPERATION


def envelope_of(operation: etree._Element, traceparent: str | None = None) -> bytes:
    """The canonical envelope (JSON bytes) a schema-valid ``DongBoTrangThaiHoSo`` carries.

    One walk over the elements (the XSD fixed their order, so the JSON's order is fixed too).
    """
    top: dict[str, Any] = {}
    errors = []
    found: list[tuple[Field, str]] = []
    _collect(operation, "", found)
    for f, text in found:
        value: Any = text
        if f.kind == "int":
            value = int(text)  # the XSD checked it is one
        elif f.kind == "time":
            value = vietnam_time(text)
            if value is None:
                errors.append(
                    {
                        "path": f.path,
                        "element": f.element,
                        "rule": "format",
                        "expected": "a real time, yyyyMMddHHmmss in Vietnam time",
                    }
                )
                continue
        node = top
        *parents, last = _KEYS[f.path]
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    if errors:
        raise Refused(Refusal.INVALID, "a time is not one (yyyyMMddHHmmss)", errors)
    payload = top["payload"]
    doc: dict[str, Any] = {
        "id": top["id"],
        "type": MESSAGE_TYPE,
        "version": VERSION,
        "source": top["source"],
        "occurred_at": top["occurred_at"],
        "correlation_id": payload["dossier_no"],
    }
    if traceparent:
        doc["traceparent"] = traceparent
    doc["payload"] = payload
    return orjson.dumps(doc)


_CLARK = f"{{{NS}}}"
_AT = {f.element: f for f in FIELDS}
_GROUPS = frozenset(f.element.rsplit("/", 1)[0] for f in FIELDS if "/" in f.element)
_KEYS = {f.path: tuple(f.path.split(".")) for f in FIELDS}


def _collect(element: etree._Element, prefix: str, found: list[tuple[Field, str]]) -> None:
    """Each known element below ``element`` with its text, in document order."""
    for child in element:
        tag = child.tag
        if not isinstance(tag, str) or not tag.startswith(_CLARK):
            continue
        name = prefix + tag[len(_CLARK) :]
        if name in _GROUPS:
            _collect(child, name + "/", found)
        else:
            f = _AT.get(name)
            if f is not None:
                found.append((f, (child.text or "").strip()))


def with_elements(refused: Refused) -> Refused:
    """``refused`` with each JSON-path error also naming this request's element."""
    for error in refused.errors:
        element = ELEMENT_OF.get(error.get("path", ""))
        if element is not None and "element" not in error:
            error["element"] = element
    return refused


def bus_header(header: etree._Element | None, name: str) -> str | None:
    """Text of the bus's SOAP header ``name`` (IdempotencyKey, traceparent), or None."""
    if header is None:
        return None
    found = header.find(f"{{{BUS_HEADERS}}}{name}")
    return None if found is None else (found.text or "").strip()
