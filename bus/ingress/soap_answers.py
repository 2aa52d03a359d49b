"""What the SOAP endpoint answers: the operation's result, or a fault saying why it refused.

A fault carries the same reason as POST /v1/messages would (``TuChoi/LyDo``: a closed set,
:class:`~bus.ingress.refusals.Refusal`), the REST status (``MaHttp``), the detail and, for an
invalid message, each problem by path and rule. The fault code says who must act: ``Client``
(SOAP 1.2 ``Sender``) for a request to fix, ``Server`` (``Receiver``) for "retry later"
(the broker did not confirm, the sender is above its rate, the key is in flight). SOAP 1.2
also names the reason as a subcode, ``dvc:<reason>``.

A header marked ``mustUnderstand`` that the endpoint does not know is the ``MustUnderstand``
fault (reason ``bad_request``), as both SOAP versions require.

HTTP status: SOAP 1.1 sends every fault with 500, as its HTTP binding requires (toolkits read
a fault body only then); SOAP 1.2 uses 400 for Sender and 500 for Receiver faults. A 429 or
503 equivalent also has ``Retry-After``.
"""

from __future__ import annotations

import math

from aiohttp import web
from lxml import etree

from adapters.soapns import SOAP11, SOAP12
from bus.ingress.refusals import Refusal, Refused
from bus.ingress.soap_status import NS, OPERATION

CONTENT_TYPE = {SOAP11: "text/xml", SOAP12: "application/soap+xml"}
RETRY_LATER = frozenset(
    {Refusal.BROKER_UNAVAILABLE, Refusal.RATE_LIMITED, Refusal.IN_FLIGHT, Refusal.SLOW_BODY}
)
ACCEPTED, ACCEPTED_BEFORE = "0", "2"  # KetQua/MaLoi, like the one-stop systems' own answers


def soap_version_of(content_type: str | None) -> str:
    """The SOAP version a request's Content-Type names (before its body is read)."""
    return SOAP12 if content_type and "application/soap+xml" in content_type else SOAP11


def _envelope(version: str) -> tuple[etree._Element, etree._Element]:
    envelope = etree.Element(f"{{{version}}}Envelope", nsmap={"soap": version, "dvc": NS})
    body = etree.SubElement(envelope, f"{{{version}}}Body")
    return envelope, body


def _response(version: str, envelope: etree._Element, status: int, **headers: str) -> web.Response:
    return web.Response(
        status=status,
        body=etree.tostring(envelope, xml_declaration=True, encoding="utf-8"),
        content_type=CONTENT_TYPE[version],
        charset="utf-8",
        headers=headers,
    )


def accepted(version: str, message_id: str, again: bool = False) -> web.Response:
    """``DongBoTrangThaiHoSoResponse``: the bus holds the message (MaLoi 0, or 2 if before)."""
    envelope, body = _envelope(version)
    answer = etree.SubElement(body, f"{{{NS}}}{OPERATION}Response")
    result = etree.SubElement(answer, f"{{{NS}}}KetQua")
    etree.SubElement(result, f"{{{NS}}}MaLoi").text = ACCEPTED_BEFORE if again else ACCEPTED
    etree.SubElement(result, f"{{{NS}}}MoTaLoi").text = (
        "accepted before for this IdempotencyKey: the bus holds the message"
        if again
        else "accepted: the bus holds the message"
    )
    etree.SubElement(result, f"{{{NS}}}MaThongDiep").text = message_id
    return _response(version, envelope, 200)


class NotUnderstood(Refused):
    """A header the sender marked ``mustUnderstand`` that this endpoint does not know: the
    SOAP ``MustUnderstand`` fault (reason ``bad_request``)."""


def _code(refused: Refused, server: bool, version: str) -> str:
    if isinstance(refused, NotUnderstood):
        return "soap:MustUnderstand"
    if version == SOAP11:
        return "soap:Server" if server else "soap:Client"
    return "soap:Receiver" if server else "soap:Sender"


def fault(version: str, refused: Refused) -> web.Response:
    """The SOAP fault for ``refused``, in the request's SOAP version."""
    server = refused.refusal in RETRY_LATER
    envelope, body = _envelope(version)
    node = etree.SubElement(body, f"{{{version}}}Fault")
    text = f"{refused.refusal.value}: {refused.detail}"
    if version == SOAP11:
        etree.SubElement(node, "faultcode").text = _code(refused, server, version)
        etree.SubElement(node, "faultstring").text = text
        detail = etree.SubElement(node, "detail")
        status = 500
    else:
        code = etree.SubElement(node, f"{{{SOAP12}}}Code")
        etree.SubElement(code, f"{{{SOAP12}}}Value").text = _code(refused, server, version)
        sub = etree.SubElement(code, f"{{{SOAP12}}}Subcode")
        etree.SubElement(sub, f"{{{SOAP12}}}Value").text = f"dvc:{refused.refusal.value}"
        reason = etree.SubElement(node, f"{{{SOAP12}}}Reason")
        said = etree.SubElement(reason, f"{{{SOAP12}}}Text")
        said.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
        said.text = text
        detail = etree.SubElement(node, f"{{{SOAP12}}}Detail")
        status = 500 if server else 400
    why = etree.SubElement(detail, f"{{{NS}}}TuChoi")
    etree.SubElement(why, f"{{{NS}}}LyDo").text = refused.refusal.value
    etree.SubElement(why, f"{{{NS}}}MaHttp").text = str(refused.status)
    etree.SubElement(why, f"{{{NS}}}MoTa").text = refused.detail
    headers: dict[str, str] = {}
    if refused.retry_after is not None:
        seconds = str(max(1, math.ceil(refused.retry_after)))
        etree.SubElement(why, f"{{{NS}}}ThuLaiSau").text = seconds
        headers["Retry-After"] = seconds
    for error in refused.errors:
        problem = etree.SubElement(why, f"{{{NS}}}Loi")
        etree.SubElement(problem, f"{{{NS}}}DuongDan").text = error.get("path", "$")
        if error.get("element"):
            etree.SubElement(problem, f"{{{NS}}}PhanTu").text = error["element"]
        etree.SubElement(problem, f"{{{NS}}}QuyTac").text = error.get("rule", "")
        if error.get("expected"):
            etree.SubElement(problem, f"{{{NS}}}YeuCau").text = error["expected"]
    return _response(version, envelope, status, **headers)
