"""Reference adapter ``portal-sync``: the national portal's dossier synchronisation API.

The "đồng bộ hồ sơ" interface agency systems have long used to keep the portal's copy of
each dossier current. Its shape, as the existing integrations use it (paths relative to
the target's endpoint; every answer is ``{error_code, message}``; see
docs/adapters/portal-sync.md)::

    POST /dangnhap      login {username, password} -> {error_code, session, expires_in}
    POST /hoso/them-moi insert a dossier record       (error_code -2: it already exists)
    POST /hoso/cap-nhat update a dossier record
    POST /hoso/tien-do  progress entries, a JSON array of up to 50 per call
                        -> {error_code, message, ket_qua: [{MaDongBo, error_code, message}]}

    error_code "0" accepted · "-2" already exists · "-9" busy, try later · other: refused

Every call carries the session (``Authorization: Bearer``), ``Idempotency-Key`` and a
``traceparent``; each record carries ``MaDongBo`` (the message id), so a repeated call
can be recognised by the portal.

How a ``dossier.status_changed`` message travels:

- status 1 or 2 (newly submitted / received): **insert**; "already exists" is retried once
  as an **update** (declared in ``response.already_exists``, not in code);
- a closing status (3, 7, 8, 9): **update** (closes the record: ``NgayKetThucXuLy``, the
  date processing finished, with the result link); 10 (result returned) is an update of
  its own that sets ``NgayTraKetQua``, the date the result was returned, and leaves the
  processing date of status 9 as it was;
- 4, 5, 6 (processing steps): a **progress** entry, sent in batches: entries arriving within
  ``batch.wait`` seconds travel in one call (up to ``batch.size``); each message gets its
  own outcome from the per-entry results (an entry the answer leaves out is not delivered:
  a transient failure, retried with the same ``MaDongBo``);
- a status the bus flags as history (``status-history``: late, older than one already
  delivered) is always a **progress** entry: it must not insert or update the record's
  current state.

The symmetric quirk: an update or a progress entry for a dossier the portal does not know
("không tồn tại", ``not_found``) falls back to an **insert** of the record (a counter
dossier the portal never saw submitted), carrying the owner, channel and receiving date
when the message has them (``counter_fields``).

``payment.confirmed`` updates the record's payment fields. Dates are ``yyyyMMddHHmmss``
in Vietnam time. Every default below can be overridden in the target's ``options``.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import TYPE_CHECKING, Any, ClassVar

import orjson
from pydantic import Field

from adapters.base import Delivered, Outcome, PermanentFailure, TargetSpec, TransientFailure
from adapters.codes import Verdict, code_text
from adapters.headers import IDEMPOTENCY_KEY, MESSAGE_TYPE
from adapters.http import Answer
from adapters.kinds.rest import (
    Call,
    RequestOptions,
    RestAdapter,
    RestOptions,
    RetryAsUpdate,
    agency_says,
    build_request,
    compile_call,
)
from adapters.mapping import MissingValue, path_getter
from adapters.message import STATUS_HISTORY, Message
from adapters.options import AdapterOptions

if TYPE_CHECKING:
    from adapters.testing.standin import Profile

VN_TIME = "yyyyMMddHHmmss"


def _time(path: str) -> dict[str, str]:
    return {"from": path, "format": VN_TIME}


RECORD = {
    "MaDongBo": "id",
    "MaHoSo": {"from": "payload.dossier_no", "required": True},
    "MaTTHC": "payload.procedure_code",
    "MaDonVi": "payload.agency",
    "TrangThaiHoSo": {"from": "payload.status", "required": True},
    "ThoiDiemXuLy": _time("payload.status_at"),
    "NgayHenTra": _time("payload.due_at"),
    "NguoiXuLy": "payload.handler.name",
    "DonViXuLy": "payload.handler.unit",
}
CLOSING = {
    **RECORD,
    "NgayKetThucXuLy": _time("payload.status_at"),  # processing finished (status 9, 3, 7, 8)
    "NoiDungXuLy": "payload.note",
    "DuongDanKetQua": "payload.result_url",
}
RETURNED = {  # status 10: its date is the result's return, not the end of processing
    **RECORD,
    "NgayTraKetQua": _time("payload.status_at"),
    "NoiDungXuLy": "payload.note",
    "DuongDanKetQua": "payload.result_url",
}
# What an insert of a dossier the portal did not know adds (a counter dossier), each sent
# only when the message carries it.
COUNTER = {
    "ChuHoSo": "payload.owner.name",
    "KenhNop": "payload.channel",
    "NgayTiepNhan": _time("payload.received_at"),
}
PROGRESS = {
    "MaDongBo": "id",
    "MaHoSo": {"from": "payload.dossier_no", "required": True},
    "SoThuTu": "payload.sequence",
    "TrangThaiHoSo": {"from": "payload.status", "required": True},
    "TrangThaiTruoc": "payload.previous_status",
    "ThoiDiemXuLy": _time("payload.status_at"),
    "NguoiXuLy": "payload.handler.name",
    "DonViXuLy": "payload.handler.unit",
    "NoiDungXuLy": "payload.note",
    "NgayHenTra": _time("payload.due_at"),
}
PAYMENT = {
    "MaDongBo": "id",
    "MaHoSo": {"from": "payload.dossier_no", "required": True},
    "MaThamChieuThanhToan": "payload.reference",
    "KetQuaThanhToan": {
        "from": "payload.result",
        "map": {"success": "1", "pending": "3", "failed": "4"},
    },
    "SoTienDaNop": "payload.amount",
    "NgayThanhToan": _time("payload.paid_at"),
    "MaGiaoDich": "payload.transaction_id",
    "MaNganHang": "payload.bank_code",
}


class BatchOptions(AdapterOptions):
    size: int = Field(default=50, ge=1, le=1000)  # entries per call at most
    wait: float = Field(default=0.05, ge=0, le=5)  # seconds an entry waits for company


class NotFoundRule(AdapterOptions):
    """The portal's answer meaning "no such dossier" to an update or a progress entry: HTTP
    200 or 404 with one of ``values`` as its error code, or a refusal whose message says so
    (a bare 404 too)."""

    values: list[str] = Field(default_factory=lambda: ["-3"])  # error_code values
    message_contains: list[str] = Field(
        default_factory=lambda: ["không tồn tại", "not found"]
    )  # case-insensitive, in a refusal only


class PortalSyncOptions(RestOptions):
    """Options of the portal synchronisation kind (defaults in ``DEFAULTS``)."""

    insert: RequestOptions
    update: RequestOptions
    returned: RequestOptions  # the update for status 10 (result returned)
    progress: RequestOptions  # url, and body: the mapping of one entry
    payment: RequestOptions
    insert_statuses: list[int] = Field(default_factory=lambda: [1, 2])
    update_statuses: list[int] = Field(default_factory=lambda: [3, 7, 8, 9])
    returned_statuses: list[int] = Field(default_factory=lambda: [10])
    not_found: NotFoundRule | None = Field(default_factory=NotFoundRule)  # null: no fallback
    counter_fields: dict[str, Any] = Field(default_factory=lambda: dict(COUNTER))
    batch: BatchOptions = Field(default_factory=BatchOptions)
    results_field: str = "ket_qua"  # per-entry results in a progress answer
    entry_key: str = "MaDongBo"  # the field of an entry that holds the message id


DEFAULTS: dict[str, Any] = {
    "insert": {"url": "{endpoint}/hoso/them-moi", "body": RECORD},
    "update": {"url": "{endpoint}/hoso/cap-nhat", "body": CLOSING},
    "returned": {"url": "{endpoint}/hoso/cap-nhat", "body": RETURNED},
    "progress": {"url": "{endpoint}/hoso/tien-do", "body": PROGRESS},
    "payment": {"url": "{endpoint}/hoso/cap-nhat", "body": PAYMENT},
    "auth": {"kind": "session", "login_url": "{endpoint}/dangnhap", "session_field": "session"},
    "response": {
        "error_code": {"field": "error_code", "success": ["0"], "transient": ["-9"]},
        "reference": ["data.MaHoSo", "reference"],
        "already_exists": {
            "values": ["-2"],
            "message_contains": ["đã tồn tại", "already exists"],
            "retry_as": {"url": "{endpoint}/hoso/cap-nhat", "body": RECORD},
        },
    },
}


class PortalSyncAdapter(RestAdapter):
    """Keeps the portal's dossier records current: insert, update, batched progress."""

    kind: ClassVar[str] = "portal-sync"
    options_model: ClassVar[type[RestOptions]] = PortalSyncOptions
    default_options: ClassVar[dict[str, Any]] = DEFAULTS

    def __init__(self, target: TargetSpec) -> None:
        super().__init__(target)
        o = self.options
        assert isinstance(o, PortalSyncOptions)
        self.sync_options = o
        self.insert_call = compile_call(o.insert, o, target, "insert.")
        self.closing_call = compile_call(o.update, o, target, "update.")
        self.returned_call = compile_call(o.returned, o, target, "returned.")
        self.progress_call = compile_call(o.progress, o, target, "progress.")
        self.payment_call = compile_call(o.payment, o, target, "payment.")
        self.insert_statuses = frozenset(o.insert_statuses)
        self.update_statuses = frozenset(o.update_statuses)
        self.returned_statuses = frozenset(o.returned_statuses)
        # The fallback inserts: the record as each call would have written it, plus the
        # counter dossier's own fields, to the insert URL (built once, like every call).
        self.counter_inserts = {
            id(call): self._counter_insert(request, o, target, where)
            for call, request, where in (
                (self.closing_call, o.update, "update."),
                (self.returned_call, o.returned, "returned."),
                (self.progress_call, RequestOptions(body=RECORD), "insert."),
            )
        }
        self.results_of = path_getter(o.results_field, "results_field")
        self.batcher = ProgressBatcher(self, o.batch.size, o.batch.wait)

    def _counter_insert(
        self, request: RequestOptions, o: PortalSyncOptions, target: TargetSpec, where: str
    ) -> Call:
        record = request.body if request.body is not None else RECORD
        body = {**record, **o.counter_fields}
        insert = RequestOptions(method=o.insert.method, url=o.insert.url, body=body)
        return compile_call(insert, o, target, where)

    async def deliver(self, message: Message) -> Outcome:
        if message.type == "dossier.status_changed":
            if STATUS_HISTORY in message.flags:  # late: a progress record, never the state
                return await self.batcher.submit(message)
            status = message.payload.get("status")
            if status in self.insert_statuses:
                return await self.deliver_with(self.insert_call, message)
            if status in self.update_statuses:
                return await self._update(self.closing_call, message)
            if status in self.returned_statuses:
                return await self._update(self.returned_call, message)
            return await self.batcher.submit(message)
        if message.type == "payment.confirmed":
            return await self._once(self.payment_call, message)
        return PermanentFailure(f"the portal sync API takes no {message.type} messages")

    async def _once(self, call: Call, message: Message) -> Outcome:
        """One call, no "already exists" retry (an update or payment is already one)."""
        return await self.settle(self.send(call, message, retried=True))

    async def _update(self, call: Call, message: Message) -> Outcome:
        """An update; a dossier the portal does not know is inserted instead (once)."""
        return await self.settle(self._update_or_insert(call, message))

    async def _update_or_insert(self, call: Call, message: Message) -> Outcome | RetryAsUpdate:
        request = build_request(call, message, self.headers_for(message))
        answer = await self.exchange(request.method, request.url, request.data, request.headers)
        if not isinstance(answer, Answer):
            return answer
        if self._not_found(answer.status, answer.body):
            return await self._once(self.counter_inserts[id(call)], message)
        return self.interpret(answer, can_retry_as_update=False)

    def _not_found(self, status: int, body: Any) -> bool:
        """Whether an answer (or a progress entry's result) says the dossier is unknown."""
        rule = self.sync_options.not_found
        if rule is None:
            return False
        doc = body
        if isinstance(body, bytes):
            try:
                doc = orjson.loads(body)
            except orjson.JSONDecodeError:
                return False
        code_rule = self.rules.error_code
        if not isinstance(doc, dict) or code_rule is None:
            return False
        if status == 404 and doc.get(code_rule.field) is None:
            return True  # a bare "not found" for the record's URL
        if status != 404 and not 200 <= status < 300:
            return False
        code = code_text(doc.get(code_rule.field))
        if code is None or code_rule.is_success(code) or code_rule.is_transient(code):
            return False
        if code in rule.values:
            return True
        text = str(doc.get(code_rule.message_field or "message") or "").lower()
        return any(fragment.lower() in text for fragment in rule.message_contains)

    async def close(self) -> None:
        await self.batcher.drain()
        await super().close()

    async def send_progress(self, messages: list[Message]) -> list[Outcome]:
        """One call carrying the progress entries of ``messages``; an outcome for each."""
        outcomes: list[Outcome | None] = [None] * len(messages)
        entries, sent = [], []
        call = self.progress_call
        for i, message in enumerate(messages):
            try:
                entries.append(call.body(message.doc) if call.body else message.payload)
                sent.append(i)
            except MissingValue as exc:
                outcomes[i] = PermanentFailure(f"message cannot be mapped: {exc}")
        if entries:
            batch = [messages[i] for i in sent]
            answer = await self.exchange(
                call.method,
                call.url.render(batch[0].doc),
                orjson.dumps(entries),
                self._batch_headers(batch, call),
            )
            for i, outcome in zip(sent, self._per_entry(answer, batch), strict=True):
                if outcome is UNKNOWN_DOSSIER:  # no such record yet: insert it instead
                    outcome = await self._once(
                        self.counter_inserts[id(self.progress_call)], messages[i]
                    )
                outcomes[i] = outcome
        return [o for o in outcomes if o is not None]

    def _batch_headers(self, batch: list[Message], call: Call) -> dict[str, str]:
        headers = self.headers_for(batch[0])
        if len(batch) > 1:
            # One key per call: derived from its entries, each of which carries its own.
            joined = ",".join(m.id for m in batch).encode()
            headers[IDEMPOTENCY_KEY] = "batch-" + hashlib.sha256(joined).hexdigest()[:32]
            headers[MESSAGE_TYPE] = batch[0].type
        headers["X-Batch-Size"] = str(len(batch))
        headers.update(call.headers)
        return headers

    def _per_entry(self, answer: Answer | Outcome, batch: list[Message]) -> list[Outcome]:
        if not isinstance(answer, Answer):
            return [answer] * len(batch)
        overall = self.interpret(answer, can_retry_as_update=False)
        assert not isinstance(overall, RetryAsUpdate)  # not allowed to ask for it
        if not isinstance(overall, Delivered):
            return [overall] * len(batch)
        try:
            doc = orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            doc = None
        field, key = self.sync_options.results_field, self.sync_options.entry_key
        results = self.results_of(doc) if isinstance(doc, dict) else None
        if not isinstance(results, list):
            # The call was accepted, but whether each entry was is not said: not a delivery.
            silent = TransientFailure(f"the portal did not answer per entry: no {field} list")
            return [silent] * len(batch)
        by_key = {str(r.get(key)): r for r in results if isinstance(r, dict)}
        return [self._entry_outcome(by_key.get(m.id), m, overall) for m in batch]

    def _entry_outcome(
        self, result: dict[str, Any] | None, message: Message, overall: Delivered
    ) -> Outcome:
        """One entry's outcome from its result; an entry the portal left out is not delivered.

        Transient, not permanent: the portal did not refuse it, it said nothing about it (a
        portal-side fault); the retry carries the same ``MaDongBo``, so a repeat of an entry
        it did record is recognised.
        """
        rule = self.rules.error_code
        assert rule is not None
        field, key = self.sync_options.results_field, self.sync_options.entry_key
        if result is None:
            return TransientFailure(
                f"the portal did not answer for this entry: no {key} {message.id} in {field}"
            )
        code = code_text(result.get(rule.field))
        if code is None:
            return TransientFailure(
                f"the portal did not answer for this entry: its {field} result has no {rule.field}"
            )
        if self._not_found(200, result):
            return UNKNOWN_DOSSIER
        if rule.verdict(code) is Verdict.DELIVERED:
            return Delivered(reference=overall.reference)
        detail = f"portal {rule.field} {code} for this entry" + (
            f": {agency_says(result, self.rules)}" if agency_says(result, self.rules) else ""
        )
        return rule.failure(code, detail)

    @classmethod
    def standin_profile(cls, target: TargetSpec) -> Profile:
        """A fake portal sync API: session login, insert/update/progress, "already exists"."""
        from adapters.testing.fakes import fake_portal_api, portal_entry_keys

        profile = super().standin_profile(target)
        profile.respond = fake_portal_api
        profile.batch_keys = portal_entry_keys
        return profile


# Not an outcome: a progress entry's result saying the portal has no such dossier (the
# entry is then inserted as the record, ``send_progress``).
UNKNOWN_DOSSIER = TransientFailure("the portal does not know this dossier")


class ProgressBatcher:
    """Gathers progress entries for ``wait`` seconds (or ``size`` entries) into one call.

    Each ``submit`` waits for its own entry's outcome; a delivery cancelled by the
    dispatcher's deadline leaves the others in its batch untouched.
    """

    def __init__(self, adapter: PortalSyncAdapter, size: int, wait: float) -> None:
        self.adapter = adapter
        self.size = size
        self.wait = wait
        self.pending: list[tuple[Message, asyncio.Future[Outcome]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self.calls = 0  # batches sent (tests and figures)

    async def submit(self, message: Message) -> Outcome:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self.pending.append((message, future))
        if len(self.pending) >= self.size:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.wait, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self.pending = self.pending[: self.size], self.pending[self.size :]
        batch = [(m, f) for m, f in batch if not f.done()]
        if self.pending:
            self._timer = asyncio.get_running_loop().call_later(self.wait, self._flush)
        if not batch:
            return
        task = asyncio.ensure_future(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[Message, asyncio.Future[Outcome]]]) -> None:
        self.calls += 1
        try:
            outcomes = await self.adapter.send_progress([m for m, _ in batch])
        except Exception as exc:  # never leave a delivery waiting forever
            outcomes = [TransientFailure(f"batch failed: {type(exc).__name__}")] * len(batch)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)

    async def drain(self) -> None:
        if self.pending:
            self._flush()
        if self._sending:
            await asyncio.wait(set(self._sending), timeout=10)
