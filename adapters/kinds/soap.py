"""The generic SOAP kind: a WSDL operation per message type, WS-Security, safe answers.

zeep reads the WSDL (shipped in ``config/wsdl/`` or at a path; never fetched over the
network) and builds each request from a declared mapping; aiohttp carries it; the answer
is read with the hardened parser of :mod:`adapters.safexml` (no DTD, no entity, no
network, size cap) and classified: SOAP ``Server`` faults are transient, ``Client`` faults
permanent (:func:`adapters.classify.soap_fault`). Options::

    wsdl: motcua-lienthong.wsdl       # a file in config/wsdl/, or a path
    service: MotCuaService            # default: the WSDL's only service
    port: MotCuaSoap                  # default: the service's first port
    operations:                       # message type -> operation and its parameters
      dossier.submitted:
        operation: TiepNhanHoSo
        parameters: {HoSo: {MaHoSo: payload.dossier_no, ...}}     # adapters.mapping
    wsse: {password_digest: true, timestamp: true, ttl: 300}      # credentials username/password
    response:
      result_code: {element: MaLoi, success: ["0", "2"], transient: ["9"], message_element: MoTaLoi}
      reference: [SoBienNhan]
    headers: {}                       # extra HTTP headers
    tls: {...}
    max_response_bytes: 1048576

The endpoint is the target's (the WSDL's address is documentation). Every request carries
the message id twice — HTTP ``Idempotency-Key`` and the SOAP header
``{urn:dvcbus:soap:headers:1}IdempotencyKey`` — and the W3C ``traceparent`` both ways too.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import zeep
from lxml import etree
from pydantic import Field, field_validator
from zeep.exceptions import ExternalReferenceForbidden
from zeep.transports import Transport
from zeep.wsdl.bindings.soap import Soap12Binding, SoapBinding

from adapters import classify, safexml
from adapters.base import (
    Adapter,
    Delivered,
    Outcome,
    PermanentFailure,
    TargetSpec,
    TransientFailure,
)
from adapters.codes import ResultCodeRule, Verdict
from adapters.headers import IDEMPOTENCY_KEY, TRACEPARENT, contract_headers
from adapters.http import DEFAULT_MAX_RESPONSE_BYTES, Answer, HttpClient, TlsOptions
from adapters.mapping import Mapper, MappingError, MissingValue, compile_mapping
from adapters.masking import mask_text
from adapters.message import Message
from adapters.options import (
    AdapterConfigError,
    AdapterOptions,
    parse_options,
    placeholder_credentials,
    require_credentials,
)
from adapters.soapns import BUS_HEADERS, ENVELOPES, SOAP11, SOAP12
from adapters.wsse import security_header

if TYPE_CHECKING:
    from adapters.testing.standin import Profile

# The checkout the bus runs from (installed editable, docs/decisions.md): config/wsdl/ is
# not package data, so the shipped WSDLs are found in the checkout, beside the code.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
WSDL_DIR = PROJECT_ROOT / "config" / "wsdl"


class SoapCallOptions(AdapterOptions):
    operation: str
    parameters: dict[str, Any] = Field(default_factory=dict)


class WsseOptions(AdapterOptions):
    username_token: bool = True
    password_digest: bool = True
    timestamp: bool = True
    ttl: float = Field(default=300.0, gt=0)
    username: str = "username"  # credentials keys
    password: str = "password"


class SoapResponseOptions(AdapterOptions):
    result_code: ResultCodeRule | None = None
    reference: list[str] = Field(default_factory=list)


class SoapOptions(AdapterOptions):
    """Options of the generic SOAP kind."""

    wsdl: str
    service: str | None = None
    port: str | None = None
    operations: dict[str, SoapCallOptions]
    wsse: WsseOptions | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    response: SoapResponseOptions = Field(default_factory=SoapResponseOptions)
    tls: TlsOptions | None = None
    max_response_bytes: int = Field(default=DEFAULT_MAX_RESPONSE_BYTES, gt=0, le=64 * 1024 * 1024)

    @field_validator("wsdl")
    @classmethod
    def _wsdl_found(cls, value: str) -> str:
        # A local lookup only, so `dvcbus routes check` names a missing WSDL at its line.
        try:
            find_wsdl(value)
        except AdapterConfigError as exc:
            raise ValueError(str(exc).removeprefix("option 'wsdl': ")) from None
        return value


class _LocalOnly(Transport):
    """A zeep transport that reads local files and refuses the network."""

    def __init__(self) -> None:
        super().__init__(  # type: ignore[no-untyped-call]  # zeep is not annotated
            cache=None, timeout=1, operation_timeout=1
        )

    def load(self, url: str) -> bytes:
        if "://" in url and not url.startswith("file://"):
            raise AdapterConfigError(
                f"the WSDL refers to {url}: remote documents are never fetched; "
                "ship every imported WSDL/XSD next to it"
            )
        document: bytes = super().load(url)  # type: ignore[no-untyped-call]  # zeep: untyped
        return document

    def post(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - never used
        raise RuntimeError("zeep's own transport is not used to send; aiohttp is")


def find_wsdl(name: str) -> Path:
    """The WSDL file ``name`` names: a path, or a file in config/wsdl/.

    A relative name is looked for, in order: from the working directory, in its
    ``config/wsdl/`` (a deployment's own WSDLs), from the project root, and in the project's
    ``config/wsdl/`` (the shipped ones; the bus runs from a checkout, see docs/decisions.md).
    """
    path = Path(name)
    candidates = [path]
    if not path.is_absolute():
        candidates += [Path.cwd() / "config" / "wsdl" / name, PROJECT_ROOT / name, WSDL_DIR / name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise AdapterConfigError(
        f"option 'wsdl': {name} is neither a file nor in config/wsdl/ "
        f"(looked in {Path.cwd()} and {PROJECT_ROOT})"
    )


@functools.lru_cache(maxsize=32)
def load_wsdl(path: str, mtime: float) -> zeep.Client:
    """A zeep client for a local WSDL (cached per file version; never touches the network)."""
    settings = zeep.Settings(
        strict=True, forbid_dtd=True, forbid_entities=True, forbid_external=True,
        xml_huge_tree=False,
    )  # fmt: skip
    try:
        # zeep is not annotated
        return zeep.Client(path, transport=_LocalOnly(), settings=settings)  # type: ignore[no-untyped-call]
    except AdapterConfigError:
        raise
    except ExternalReferenceForbidden as exc:
        raise AdapterConfigError(
            f"option 'wsdl': {Path(path).name} refers to {exc.url}: remote documents are "
            "never fetched; ship every imported WSDL/XSD next to it"
        ) from None
    except Exception as exc:
        raise AdapterConfigError(
            f"option 'wsdl': {Path(path).name} cannot be read: {type(exc).__name__}: "
            f"{str(exc)[:200]}"
        ) from None


@dataclass(frozen=True, slots=True)
class SoapCall:
    """A compiled operation: zeep's operation, the parameter mapping, its SOAPAction."""

    operation: str
    zeep_operation: Any
    parameters: Mapper
    action: str


class SoapAdapter(Adapter):
    """Calls a WSDL operation per message type and reads the answer with a hardened parser."""

    kind: ClassVar[str] = "soap"
    options_model: ClassVar[type[SoapOptions]] = SoapOptions
    default_options: ClassVar[dict[str, Any]] = {}

    def __init__(self, target: TargetSpec) -> None:
        super().__init__(target)
        self.options = o = parse_options(self.options_model, target, self.default_options)
        path = find_wsdl(o.wsdl)
        client = load_wsdl(str(path), path.stat().st_mtime)
        self.binding = _binding(client, o.service, o.port)
        self.soap12 = isinstance(self.binding, Soap12Binding)
        self.envelope_ns = SOAP12 if self.soap12 else SOAP11
        self.calls: dict[str, SoapCall] = {}
        for type_, call in o.operations.items():
            operation = self.binding._operations.get(call.operation)
            if operation is None:
                known = ", ".join(sorted(self.binding._operations))
                raise AdapterConfigError(
                    f"option 'operations.{type_}.operation': {call.operation!r} is not an "
                    f"operation of the WSDL's port (it has: {known})"
                )
            try:
                mapper = compile_mapping(call.parameters, f"operations.{type_}.parameters")
            except MappingError as exc:
                raise AdapterConfigError(f"target {target.name!r}: option {exc}") from None
            self.calls[type_] = SoapCall(
                call.operation, operation, mapper, operation.soapaction or ""
            )
        if o.wsse is not None and o.wsse.username_token:
            require_credentials(target, o.wsse.username, o.wsse.password, why="wsse")
        rules = o.response
        self.result_code = rules.result_code
        self.http = HttpClient(target, tls=o.tls, max_response_bytes=o.max_response_bytes)

    async def start(self) -> None:
        self.http.session  # noqa: B018 - open the pool before the first delivery

    async def close(self) -> None:
        await self.http.close()

    # --- building the request ----------------------------------------------------------

    def build(self, message: Message) -> tuple[SoapCall, bytes, dict[str, str]]:
        """The call, the envelope bytes and the HTTP headers for ``message``.

        Raises :class:`MissingValue` (or zeep's ValidationError) when the message cannot
        become the operation's parameters: a permanent failure.
        """
        call = self.calls[message.type]
        params = call.parameters(message.doc)
        serialized = call.zeep_operation.create(**params)
        envelope = serialized.content
        contract = contract_headers(message)  # the SOAP header carries the same values
        header = _header_of(envelope, self.envelope_ns)
        o = self.options
        if o.wsse is not None:
            creds = self.target.credentials
            header.append(
                security_header(
                    self.envelope_ns,
                    username=creds.get(o.wsse.username) if o.wsse.username_token else None,
                    password=creds.get(o.wsse.password) if o.wsse.username_token else None,
                    digest=o.wsse.password_digest,
                    timestamp=o.wsse.timestamp,
                    ttl=o.wsse.ttl,
                )
            )
        key = etree.SubElement(
            header, f"{{{BUS_HEADERS}}}IdempotencyKey", nsmap={"bus": BUS_HEADERS}
        )
        key.text = contract[IDEMPOTENCY_KEY]
        trace = etree.SubElement(
            header, f"{{{BUS_HEADERS}}}traceparent", nsmap={"bus": BUS_HEADERS}
        )
        trace.text = contract[TRACEPARENT]
        body = etree.tostring(envelope, xml_declaration=True, encoding="utf-8")
        if self.soap12:
            content_type = f'application/soap+xml; charset=utf-8; action="{call.action}"'
            headers = {"Content-Type": content_type}
        else:
            headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{call.action}"'}
        headers.update(contract)
        headers.update(o.headers)
        return call, body, headers

    async def deliver(self, message: Message) -> Outcome:
        if message.type not in self.calls:
            return PermanentFailure(
                f"no SOAP operation is configured for {message.type} (options.operations)"
            )
        try:
            call, body, headers = self.build(message)
        except MissingValue as exc:
            return PermanentFailure(f"message cannot be mapped: {exc}")
        except (zeep.exceptions.Error, TypeError, ValueError) as exc:
            operation = self.calls[message.type].operation
            detail = mask_text(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return PermanentFailure(f"message does not fit {operation}: {detail[:200]}")
        except Exception as exc:  # a bug here must not reach the dispatcher as an exception
            return classify.for_bug(exc, self.kind)
        t = self.target
        try:
            answer = await self.http.request("POST", t.endpoint, data=body, headers=headers)
        except Exception as exc:  # translated at the edge: the dispatcher never sees it
            return classify.for_exception(
                exc, connect_timeout=t.connect_timeout, read_timeout=t.read_timeout
            )
        try:
            return self.interpret(answer, call.operation)
        except Exception as exc:
            return classify.for_bug(exc, self.kind)

    # --- reading the answer ------------------------------------------------------------

    def interpret(self, answer: Answer, operation: str = "") -> Outcome:
        """What the agency's answer means: a fault, the status, then the result code."""
        body = answer.body
        if body.lstrip()[:1] != b"<":
            if not answer.ok:
                return _for_status(answer)
            return classify.unreadable(f"HTTP {answer.status}, not XML", body)
        try:
            root = safexml.parse(body, max_bytes=self.options.max_response_bytes)
        except safexml.UnsafeXml as exc:
            if exc.hostile:  # never quoted: what it tries to do is the reason
                return PermanentFailure(f"XML answer refused (HTTP {answer.status}): {exc}")
            if answer.ok:  # merely broken: quote its start (masked), as for any unreadable one
                return classify.unreadable(f"HTTP {answer.status}, {exc}", body)
            return _for_status(answer)  # e.g. an HTML error page of a proxy
        envelope_ns = _namespace(root)
        if safexml.local_name(root) != "Envelope" or envelope_ns not in ENVELOPES:
            if not answer.ok:
                return _for_status(answer)
            return classify.unreadable(f"HTTP {answer.status}, not a SOAP envelope", body)
        soap_body = root.find(f"{{{envelope_ns}}}Body")
        content = _first_element(soap_body) if soap_body is not None else None
        if content is not None and safexml.local_name(content) == "Fault":
            fault_code, text = _fault(content, envelope_ns)
            return classify.soap_fault(fault_code, text)
        if not answer.ok:
            return _for_status(answer)
        if content is None:
            return classify.unreadable(f"HTTP {answer.status}, empty SOAP body", body)
        reference = None
        for name in self.options.response.reference:
            reference = safexml.text_of(content, name) or None
            if reference:
                break
        rule = self.result_code
        if rule is None:
            return Delivered(reference=reference)
        code = safexml.text_of(content, rule.element)
        if code is None:
            return classify.unreadable(f"HTTP {answer.status}, no {rule.element}", body)
        if rule.verdict(code) is Verdict.DELIVERED:
            return Delivered(reference=reference, detail=f"{rule.element} {code}")
        says = safexml.text_of(content, rule.message_element) if rule.message_element else None
        detail = f"{operation or 'agency'} answered {rule.element} {code}" + (
            f": {classify.quote(says.encode())}" if says else ""
        )
        return rule.failure(code, detail)

    # --- the stand-in's imitation of this system ------------------------------------------

    @classmethod
    def standin_profile(cls, target: TargetSpec) -> Profile:
        """How a stand-in answers like this target's SOAP system (an adapters.testing Profile)."""
        from adapters.testing.standin import Profile

        adapter = cls(placeholder_credentials(target))
        answers = {}
        for call in adapter.calls.values():
            input_body = call.zeep_operation.input.body
            output_body = call.zeep_operation.output.body
            if input_body is None or output_body is None:
                continue
            answers[input_body.qname.localname] = adapter._answer_template(output_body)
        return Profile(protocol="soap12" if adapter.soap12 else "soap", soap_answers=answers)

    def _answer_template(self, output_element: Any) -> bytes:
        """A successful answer for an operation, with ``{reference}`` to fill in."""
        ns = self.envelope_ns
        qname = output_element.qname
        envelope = etree.Element(f"{{{ns}}}Envelope", nsmap={"soap": ns, "tns": qname.namespace})
        body = etree.SubElement(envelope, f"{{{ns}}}Body")
        response = etree.SubElement(body, qname.text)
        rules = self.options.response
        wanted: list[tuple[str, str]] = []
        if rules.result_code is not None:
            wanted.append((rules.result_code.element, rules.result_code.success[0]))
            if rules.result_code.message_element:
                wanted.append((rules.result_code.message_element, "Thành công"))
        wanted.extend((name, "{reference}") for name in rules.reference[:1])
        for name, text in wanted:
            path = _path_to(output_element.type, name, qname.namespace) or [
                f"{{{qname.namespace}}}{name}"
            ]
            parent = response
            for tag in path[:-1]:
                found = parent.find(tag)
                parent = found if found is not None else etree.SubElement(parent, tag)
            etree.SubElement(parent, path[-1]).text = text
        return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")


def _binding(client: zeep.Client, service: str | None, port: str | None) -> SoapBinding:
    services = client.wsdl.services
    if service is None:
        if len(services) != 1:
            raise AdapterConfigError(
                f"option 'service': the WSDL has {len(services)} services "
                f"({', '.join(services)}); name one"
            )
        service = next(iter(services))
    if service not in services:
        raise AdapterConfigError(
            f"option 'service': {service!r} is not in the WSDL ({', '.join(services)})"
        )
    ports = services[service].ports
    if port is None:
        port = next(iter(ports))
    if port not in ports:
        raise AdapterConfigError(
            f"option 'port': {port!r} is not a port of {service} ({', '.join(ports)})"
        )
    binding = ports[port].binding
    if not isinstance(binding, SoapBinding):
        raise AdapterConfigError(f"option 'port': {port!r} is not a SOAP binding")
    return binding


def _for_status(answer: Answer) -> TransientFailure | PermanentFailure:
    """An unsuccessful status, saying where a redirect pointed (redirects are not followed)."""
    return classify.for_status(answer.status, location=answer.location)


def _header_of(envelope: etree._Element, ns: str) -> etree._Element:
    header = envelope.find(f"{{{ns}}}Header")
    if header is None:
        header = etree.Element(f"{{{ns}}}Header")
        envelope.insert(0, header)
    return header


def _namespace(element: etree._Element) -> str:
    tag = element.tag
    return tag[1:].split("}", 1)[0] if isinstance(tag, str) and tag.startswith("{") else ""


def _first_element(parent: etree._Element) -> etree._Element | None:
    for child in parent:
        if isinstance(child.tag, str):
            return child
    return None


def _fault(fault: etree._Element, ns: str) -> tuple[str, str]:
    if ns == SOAP12:
        code = fault.findtext(f"{{{ns}}}Code/{{{ns}}}Value") or ""
        text = fault.findtext(f"{{{ns}}}Reason/{{{ns}}}Text") or ""
    else:
        code = fault.findtext("faultcode") or fault.findtext(f"{{{ns}}}faultcode") or ""
        text = fault.findtext("faultstring") or fault.findtext(f"{{{ns}}}faultstring") or ""
    return code.strip(), text.strip()


def _path_to(type_: Any, name: str, ns: str, depth: int = 0) -> list[str] | None:
    """Qualified tags from an operation's output type down to the element ``name``."""
    if depth > 6:
        return None
    for child_name, element in getattr(type_, "elements", []) or []:
        tag = element.qname.text if getattr(element, "qname", None) else f"{{{ns}}}{child_name}"
        if child_name == name:
            return [tag]
        below = _path_to(getattr(element, "type", None), name, ns, depth + 1)
        if below:
            return [tag, *below]
    return None
