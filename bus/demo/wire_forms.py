"""The forms a demo message takes on the gateway's non-JSON ways in, as their senders write them.

A SOAP-era one-stop system sends a status update as the WSDL's ``DongBoTrangThaiHoSo``
(the portal's field names, ``yyyyMMddHHmmss`` Vietnam time, WS-Security UsernameToken); the
payment platform sends its own confirmation (integration 1.0.6: the strings it signed, their
checksum, its result code). Both are built from the canonical envelope the traffic generator
made, by the same field tables the gateway converts them back with
(:mod:`bus.ingress.soap_status`, :mod:`bus.ingress.payment_callback`), so what the bus holds
is the generated message again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from adapters.soapns import BUS_HEADERS, SOAP11, WSSE
from bus.contract.platform_time import VIETNAM
from bus.ingress.payment_callback import NATIVE_OF_SIGNED, RESULTS
from bus.ingress.soap_status import FIELDS, NS, OPERATION

SOAP_ACTION = f'"{NS}/{OPERATION}"'
SOAP_CONTENT_TYPE = "text/xml; charset=utf-8"
_RESULT_CODE = {result: int(code) for code, result in RESULTS.items()}


def _vietnam(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(VIETNAM).strftime("%Y%m%d%H%M%S")


def _value(doc: dict[str, Any], path: str) -> Any:
    node: Any = doc
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def soap_status_request(doc: dict[str, Any], username: str, password: str) -> bytes:
    """A ``dossier.status_changed`` envelope as a SOAP 1.1 ``DongBoTrangThaiHoSo`` request,
    authenticated by a WS-Security UsernameToken (PasswordText)."""
    opened: list[str] = []  # the groups (TrangThai, ThongTinXuLy) open at this point
    parts: list[str] = []
    for f in FIELDS:  # in the XSD's order
        value = _value(doc, f.path)
        if value is None:
            continue
        *groups, name = f.element.split("/")
        while opened and opened != groups[: len(opened)]:
            parts.append(f"</t:{opened.pop()}>")
        for group in groups[len(opened) :]:
            parts.append(f"<t:{group}>")
            opened.append(group)
        text = _vietnam(value) if f.kind == "time" else str(value)
        parts.append(f"<t:{name}>{escape(text)}</t:{name}>")
    parts.extend(f"</t:{g}>" for g in reversed(opened))
    trace = doc.get("traceparent")
    trace_header = f"<bus:traceparent>{escape(trace)}</bus:traceparent>" if trace else ""
    return (
        f'<soap:Envelope xmlns:soap="{SOAP11}" xmlns:wsse="{WSSE}" '
        f'xmlns:bus="{BUS_HEADERS}" xmlns:t="{NS}"><soap:Header><wsse:Security>'
        f"<wsse:UsernameToken><wsse:Username>{escape(username)}</wsse:Username>"
        f"<wsse:Password>{escape(password)}</wsse:Password></wsse:UsernameToken>"
        f"</wsse:Security>{trace_header}</soap:Header><soap:Body>"
        f"<t:{OPERATION}>{''.join(parts)}</t:{OPERATION}></soap:Body></soap:Envelope>"
    ).encode()


def platform_confirmation(doc: dict[str, Any]) -> dict[str, Any]:
    """A ``payment.confirmed`` v2 envelope as the platform's own callback body.

    The signed strings go as signed; ``errorCode`` and ``result`` are the payload's, so a
    confirmation altered on the way (a failure turned into a success, its checksum left as
    signed) reaches the bus altered, and the router finds the checksum does not match. The
    amount is the payload's JSON number (``8000.0`` stays a float, which the gateway refuses).
    """
    payload = doc["payload"]
    signed = payload["signed"]
    native: dict[str, Any] = {name: signed[key] for key, name in NATIVE_OF_SIGNED.items()}
    native["errorCode"] = payload["error_code"]
    native["amount"] = payload["amount"]
    native.update(
        checksum=payload["checksum"],
        result=_RESULT_CODE[payload["result"]],
        dossierNo=payload["dossier_no"],
        agencyCode=payload["agency"],
    )
    if "procedure_code" in payload:
        native["procedureCode"] = payload["procedure_code"]
    if "payer" in payload:
        native["payerName"] = payload["payer"]["name"]
    return native
