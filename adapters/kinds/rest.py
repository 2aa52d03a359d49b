"""The generic REST kind: one HTTP call per message, the outcome from status and answer.

With no options it POSTs the canonical message body unchanged. Options (``options:`` of
the target in routes.yaml; every key is described in docs/adapters.md)::

    method: POST                    # HTTP method
    url: "{endpoint}/hoso/{payload.dossier_no}"   # default: the endpoint
    headers: {X-Nguon: DVCBUS}      # static extra headers
    body:                           # declared mapping (adapters.mapping); default: unchanged
      MaHoSo: payload.dossier_no
      NgayTiepNhan: {from: payload.status_at, format: yyyyMMddHHmmss}
    types:                          # per message type: method/url/body/headers overrides
      payment.confirmed: {url: "{endpoint}/thanhtoan"}
    auth: {kind: oauth2, token_url: /oauth/token}     # bearer | basic | oauth2 | session
    response:
      expect: json                  # a 2xx answer must be JSON (or empty); "any" accepts text
      error_code: {field: error_code, success: ["0"], transient: ["-99"]}   # undeclared:
                                    # a non-zero usual code field is refused (adapters.codes)
      reference: [reference, id]    # where the agency's own id for the delivery is
      already_exists:               # the insert that must be retried as an update
        values: ["-2"]
        message_contains: ["đã tồn tại"]
        retry_as: {method: PUT, url: "{endpoint}/{payload.dossier_no}"}
    tls: {ca_file: /etc/dvcbus/agency-ca.pem, client_cert: ..., client_key: ...}
    max_response_bytes: 1048576

Credentials: ``token`` alone sends ``Authorization: Bearer <token>``; the ``auth`` flows
name the keys they use. Every request carries ``Idempotency-Key`` (the message id),
``traceparent`` and ``X-Message-Type``, and states the target's connect and read timeouts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, overload

import orjson
from pydantic import Field, field_validator

from adapters import classify
from adapters.auth import (
    Auth,
    AuthFailed,
    AuthOptions,
    OAuth2ClientCredentials,
    OAuth2Options,
    SessionLogin,
    SessionOptions,
    build_auth,
)
from adapters.base import (
    Adapter,
    Delivered,
    Outcome,
    PermanentFailure,
    TargetSpec,
)
from adapters.codes import ErrorCodeRule, Verdict, code_text, undeclared_failure
from adapters.headers import contract_headers
from adapters.headers import new_traceparent as new_traceparent  # its old home, kept
from adapters.http import DEFAULT_MAX_RESPONSE_BYTES, Answer, HttpClient, TlsOptions, UrlTemplate
from adapters.mapping import (
    Getter,
    Mapper,
    MappingError,
    MissingValue,
    compile_mapping,
    path_getter,
)
from adapters.masking import mask_text
from adapters.message import Message
from adapters.options import (
    AdapterConfigError,
    AdapterOptions,
    parse_options,
    placeholder_credentials,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from adapters.testing.standin import Profile

MAX_RESPONSE_BYTES = DEFAULT_MAX_RESPONSE_BYTES
TRANSIENT_STATUSES = classify.TRANSIENT_STATUSES
DEFAULT_REFERENCE_FIELDS = ("reference", "id", "ma_ho_so", "MaHoSo")


class RequestOptions(AdapterOptions):
    """One HTTP call: any key left out is taken from the target's defaults."""

    method: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    body: dict[str, Any] | None = None


class AlreadyExistsRule(AdapterOptions):
    """The answer to an insert meaning "already exists": retried once as ``retry_as``."""

    values: list[str] = Field(default_factory=list)  # error_code values
    status: list[int] = Field(default_factory=list)  # HTTP statuses, e.g. 409
    message_contains: list[str] = Field(default_factory=list)  # case-insensitive
    retry_as: RequestOptions

    @field_validator("values", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return [str(v) for v in value] if isinstance(value, list | tuple) else value


class ResponseOptions(AdapterOptions):
    expect: str = "json"
    error_code: ErrorCodeRule | None = None
    reference: list[str] = Field(default_factory=lambda: list(DEFAULT_REFERENCE_FIELDS))
    already_exists: AlreadyExistsRule | None = None

    @field_validator("expect")
    @classmethod
    def _expect(cls, value: str) -> str:
        if value not in ("json", "any"):
            raise ValueError("must be json or any")
        return value


class RestOptions(AdapterOptions):
    """Options of the generic REST kind."""

    method: str = "POST"
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    body: dict[str, Any] | None = None
    types: dict[str, RequestOptions] = Field(default_factory=dict)
    auth: AuthOptions | None = None
    response: ResponseOptions = Field(default_factory=ResponseOptions)
    tls: TlsOptions | None = None
    max_response_bytes: int = Field(default=DEFAULT_MAX_RESPONSE_BYTES, gt=0, le=64 * 1024 * 1024)


@dataclass(frozen=True, slots=True)
class Call:
    """A compiled request: method, URL template, body mapping (None: the message unchanged)."""

    method: str
    url: UrlTemplate
    body: Mapper | None
    headers: dict[str, str]

    def payload(self, message: Message) -> bytes:
        if self.body is None:
            return message.body
        return orjson.dumps(self.body(message.doc))


@dataclass(frozen=True, slots=True)
class RestRequest:
    """One HTTP request for one message, ready to send (credentials are added on sending)."""

    method: str
    url: str
    data: bytes
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class AnswerRules:
    """The target's declared answer rules (``response:``), compiled once."""

    expect_json: bool
    reference: tuple[Getter, ...]
    error_code: ErrorCodeRule | None
    code_of: Getter | None
    message_of: Getter | None
    already_exists: AlreadyExistsRule | None

    @classmethod
    def compile(cls, response: ResponseOptions) -> AnswerRules:
        """Raises :class:`MappingError` naming the option whose path is wrong."""
        rule = response.error_code
        return cls(
            expect_json=response.expect == "json",
            reference=tuple(path_getter(f, "response.reference") for f in response.reference),
            error_code=rule,
            code_of=path_getter(rule.field, "response.error_code.field") if rule else None,
            message_of=(
                path_getter(rule.message_field, "response.error_code.message_field")
                if rule and rule.message_field
                else None
            ),
            already_exists=response.already_exists,
        )


class RetryAsUpdate:
    """Not an outcome: the agency says the record exists, so the insert is retried as the
    declared update (``response.already_exists.retry_as``)."""


RETRY_AS_UPDATE = RetryAsUpdate()
ALREADY_EXISTS = RETRY_AS_UPDATE  # its earlier name


def compile_call(
    request: RequestOptions, options: RestOptions, target: TargetSpec, where: str = ""
) -> Call:
    """The call ``request`` describes, any key it leaves out taken from the kind's ``options``.

    ``where`` prefixes option names in errors (``types.payment.confirmed.``).
    """
    body_spec = request.body if request.body is not None else options.body
    try:
        body = compile_mapping(body_spec, f"{where}body") if body_spec is not None else None
    except MappingError as exc:
        raise AdapterConfigError(f"target {target.name!r}: option {exc}") from None
    return Call(
        method=(request.method or options.method).upper(),
        url=UrlTemplate(request.url or options.url, target.endpoint, f"{where}url"),
        body=body,
        headers={**options.headers, **request.headers},
    )


def request_headers(message: Message) -> dict[str, str]:
    """The headers every JSON call for ``message`` carries (before the call's own and auth)."""
    return {"Content-Type": "application/json; charset=utf-8", **contract_headers(message)}


def build_request(
    call: Call, message: Message, base_headers: dict[str, str] | None = None
) -> RestRequest:
    """``call`` for ``message``: URL, body and headers (raises MissingValue while mapping).

    ``base_headers`` (default :func:`request_headers`) come first, then the call's own.
    """
    url = call.url.render(message.doc)
    data = call.payload(message)
    headers = dict(base_headers) if base_headers is not None else request_headers(message)
    headers.update(call.headers)
    return RestRequest(call.method, url, data, headers)


@overload
def interpret_answer(
    status: int,
    body: bytes,
    rules: AnswerRules,
    *,
    location: str | None = None,
    allow_update: Literal[False] = False,
) -> Outcome: ...
@overload
def interpret_answer(
    status: int,
    body: bytes,
    rules: AnswerRules,
    *,
    location: str | None = None,
    allow_update: bool,
) -> Outcome | RetryAsUpdate: ...
def interpret_answer(
    status: int,
    body: bytes,
    rules: AnswerRules,
    *,
    location: str | None = None,
    allow_update: bool = False,
) -> Outcome | RetryAsUpdate:
    """What an agency's answer means: status first, then the declared answer rules.

    ``location`` is the answer's Location header (a redirect is named, never followed).
    With ``allow_update``, an "already exists" refusal (``rules.already_exists``) comes back
    as :data:`RETRY_AS_UPDATE` instead of a failure.
    """
    doc: Any = None
    if body.strip():
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            if 200 <= status < 300 and rules.expect_json:
                return classify.unreadable(f"HTTP {status}, not JSON", body)
    if allow_update and _already_exists(status, doc, rules):
        return RETRY_AS_UPDATE
    if not 200 <= status < 300:
        return classify.for_status(status, agency_says(doc, rules), location=location)
    rule = rules.error_code
    if rule is None or rules.code_of is None:
        # No declared rule: a code field saying "failed" must not pass for a delivery.
        return undeclared_failure(doc) or Delivered(reference=reference_of(doc, rules))
    if not isinstance(doc, dict):
        return classify.unreadable(f"HTTP {status}, no {rule.field}", body)
    code = code_text(rules.code_of(doc))
    if code is None:
        return classify.unreadable(f"HTTP {status}, no {rule.field}", body)
    if rule.verdict(code) is Verdict.DELIVERED:
        return Delivered(reference=reference_of(doc, rules))
    says = agency_says(doc, rules)
    return rule.failure(code, f"agency {rule.field} {code}" + (f": {says}" if says else ""))


def _already_exists(status: int, doc: Any, rules: AnswerRules) -> bool:
    """Whether the answer is the agency's "already exists" refusal of an insert.

    Only a refusal qualifies: an accepted answer whose text happens to say "đã tồn tại"
    ("recorded; it already existed") is a delivery, and a transient refusal ("busy")
    must wait for a retry rather than become an update. The declared ``status`` and
    ``values`` are taken as the agency declares them; ``message_contains`` is a looser
    match, so it applies only to a permanent refusal.
    """
    rule = rules.already_exists
    if rule is None:
        return False
    error_code = rules.error_code
    code = (
        code_text(rules.code_of(doc))
        if rules.code_of is not None and isinstance(doc, dict)
        else None
    )
    accepted = 200 <= status < 300 and (error_code is None or error_code.is_success(code))
    if accepted:
        return False
    if status in rule.status or (code is not None and code in rule.values):
        return True
    transient = classify.is_transient_status(status) or (
        error_code is not None and error_code.is_transient(code)
    )
    if rule.message_contains and rules.message_of is not None and not transient:
        text = str(rules.message_of(doc) or "").lower() if isinstance(doc, dict) else ""
        return any(fragment.lower() in text for fragment in rule.message_contains)
    return False


def agency_says(doc: Any, rules: AnswerRules) -> str:
    """The agency's own message (masked, short) when the answer rules name one."""
    if rules.message_of is None or not isinstance(doc, dict):
        return ""
    message = rules.message_of(doc)
    if not isinstance(message, str) or not message:
        return ""
    return repr(mask_text(" ".join(message.split()))[:160])


def reference_of(doc: Any, rules: AnswerRules) -> str | None:
    """The agency's own id for the delivery, from the first declared field that has one."""
    if not isinstance(doc, dict):
        return None
    for get in rules.reference:
        value = get(doc)
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)
    return None


class RestAdapter(Adapter):
    """Delivers a message as one HTTP call, mapped or unchanged, and reads the agency's answer.

    Built from the public pieces above (:func:`compile_call`, :func:`build_request`,
    :func:`interpret_answer`): a new kind composes them rather than subclassing this.
    """

    kind: ClassVar[str] = "rest"
    options_model: ClassVar[type[RestOptions]] = RestOptions
    default_options: ClassVar[dict[str, Any]] = {}

    def __init__(self, target: TargetSpec) -> None:
        super().__init__(target)
        self.options = parse_options(self.options_model, target, self.default_options)
        o = self.options
        try:
            self.default_call = compile_call(RequestOptions(), o, target)
            self.calls = {
                type_: compile_call(request, o, target, f"types.{type_}.")
                for type_, request in o.types.items()
            }
            self.rules = AnswerRules.compile(o.response)
            self.update_call = (
                compile_call(
                    o.response.already_exists.retry_as,
                    o,
                    target,
                    "response.already_exists.retry_as.",
                )
                if o.response.already_exists
                else None
            )
        except MappingError as exc:
            raise AdapterConfigError(f"target {target.name!r}: option {exc}") from None
        self.auth: Auth = build_auth(o.auth, target)
        self.http = HttpClient(target, tls=o.tls, max_response_bytes=o.max_response_bytes)

    async def start(self) -> None:
        self.http.session  # noqa: B018 - open the pool before the first delivery

    async def close(self) -> None:
        await self.http.close()

    def headers_for(self, message: Message) -> dict[str, str]:
        """The headers every call for ``message`` carries (before authentication)."""
        return request_headers(message)

    async def deliver(self, message: Message) -> Outcome:
        return await self.deliver_with(self.calls.get(message.type, self.default_call), message)

    async def deliver_with(self, call: Call, message: Message) -> Outcome:
        """Deliver with ``call``; an "already exists" answer is retried once as the update."""
        return await self.settle(self._send_or_update(call, message))

    async def _send_or_update(self, call: Call, message: Message) -> Outcome | RetryAsUpdate:
        outcome = await self.send(call, message)
        if outcome is RETRY_AS_UPDATE:
            assert self.update_call is not None
            outcome = await self.send(self.update_call, message, retried=True)
        return outcome

    async def settle(self, attempt: Awaitable[Outcome | RetryAsUpdate]) -> Outcome:
        """The outcome of ``attempt``: a message that cannot be mapped, or a bug, is one too.

        Errors are translated here, at the adapter's edge, so the dispatcher only ever sees
        an outcome; ``attempt`` must not end asking for an update (it does that itself).
        """
        try:
            outcome = await attempt
        except MissingValue as exc:
            return PermanentFailure(f"message cannot be mapped: {exc}")
        except Exception as exc:  # a bug here must not reach the dispatcher as an exception
            return classify.for_bug(exc, self.kind)
        assert not isinstance(outcome, RetryAsUpdate)
        return outcome

    async def send(
        self, call: Call, message: Message, *, retried: bool = False
    ) -> Outcome | RetryAsUpdate:
        """One call for ``message``, classified (may raise MissingValue while mapping)."""
        request = build_request(call, message, self.headers_for(message))
        answer = await self.exchange(request.method, request.url, request.data, request.headers)
        if not isinstance(answer, Answer):
            return answer
        can_update = not retried and self.update_call is not None
        return self.interpret(answer, can_retry_as_update=can_update)

    async def exchange(
        self, method: str, url: str, data: bytes, headers: dict[str, str]
    ) -> Answer | Outcome:
        """Send one request with credentials (renewed and resent once after a 401).

        Returns the answer, or the outcome a transport or credential failure means.
        """
        try:
            used = await self.auth.apply(self.http, headers)
            answer = await self.http.request(method, url, data=data, headers=headers)
            if answer.status == 401 and self.auth.renews:
                await self.auth.renew(self.http, used)
                await self.auth.apply(self.http, headers)
                answer = await self.http.request(method, url, data=data, headers=headers)
            return answer
        except AuthFailed as exc:
            return exc.outcome
        except Exception as exc:  # translated at the edge: the dispatcher never sees it
            t = self.target
            return classify.for_exception(
                exc, connect_timeout=t.connect_timeout, read_timeout=t.read_timeout
            )

    def interpret(
        self, answer: Answer, *, can_retry_as_update: bool = True
    ) -> Outcome | RetryAsUpdate:
        """What the agency's answer means (:func:`interpret_answer` with this target's rules)."""
        return interpret_answer(
            answer.status,
            answer.body,
            self.rules,
            location=answer.location,
            allow_update=can_retry_as_update,
        )

    @classmethod
    def standin_profile(cls, target: TargetSpec) -> Profile:
        """How a stand-in imitates this target's system (see adapters.testing.standin.Profile)."""
        from adapters.testing.standin import Profile

        adapter = cls(placeholder_credentials(target))
        auth = adapter.options.auth
        if isinstance(auth, OAuth2Options):
            assert isinstance(adapter.auth, OAuth2ClientCredentials)
            return Profile(auth="oauth2", auth_path=adapter.auth.url)
        if isinstance(auth, SessionOptions):
            assert isinstance(adapter.auth, SessionLogin)
            return Profile(
                auth="session",
                auth_path=adapter.auth.url,
                session_field=auth.session_field,
                auth_header=auth.header,
                auth_scheme=auth.scheme,
            )
        return Profile()
