"""Authentication flows of the HTTP kinds against real token and login endpoints on loopback."""

import asyncio
import base64
import socket
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from adapters.base import Delivered, PermanentFailure, TargetSpec, TransientFailure
from adapters.kinds.rest import RestAdapter
from adapters.options import AdapterConfigError
from adapters.testing import Behaviour, Endpoint, StandinThread
from bus.contract.envelope import Message
from bus.routes.credentials import resolve_credential

DOC = {
    "id": "01a21070-f5a8-745d-80bd-5ae508e1ed3d",
    "type": "dossier.status_changed",
    "version": 1,
    "source": "000.00.00.H26",
    "occurred_at": "2026-11-25T09:00:00+07:00",
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "payload": {"dossier_no": "000.00.12.H26-261125-0001", "status": 2},
}
MESSAGE = Message.from_doc(DOC, orjson.dumps(DOC))
SECRET = "client-secret-9f8e7d"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def target(url: str, auth: dict | None, **credentials: str) -> TargetSpec:
    return TargetSpec(
        name="agency",
        agency="000.00.00.H26",
        adapter="rest",
        endpoint=url,
        connect_timeout=1.0,
        read_timeout=2.0,
        concurrency=16,
        options={"auth": auth} if auth else {},
        credentials=credentials,
    )


OAUTH = {"kind": "oauth2", "token_url": "/oauth/token", "scope": "dossier.write"}
SESSION = {"kind": "session", "login_url": "{endpoint}/login", "session_field": "data.session"}


@pytest.fixture
def agency(request: pytest.FixtureRequest) -> Iterator[tuple[TargetSpec, StandinThread]]:
    auth = request.param
    url = f"http://127.0.0.1:{free_port()}/api/hoso"
    spec = target(url, auth, client_id="dvcbus", client_secret=SECRET, username="u", password="p")
    profile = RestAdapter.standin_profile(spec)
    with StandinThread([Endpoint("agency", url, profile)]) as standin:
        yield spec, standin


def run(spec: TargetSpec, *steps: object) -> list:
    """Deliver with one adapter; a step is a number of concurrent deliveries or a pause (float)."""

    async def go() -> list:
        adapter = RestAdapter(spec)
        await adapter.start()
        outcomes: list = []
        try:
            for step in steps:
                if isinstance(step, float):
                    await asyncio.sleep(step)
                elif callable(step):
                    step()
                else:
                    outcomes += await asyncio.gather(
                        *(adapter.deliver(MESSAGE) for _ in range(step))  # type: ignore[arg-type]
                    )
        finally:
            await adapter.close()
        return outcomes

    return asyncio.run(go())


@pytest.mark.parametrize("agency", [OAUTH], indirect=True)
def test_oauth2_token_is_fetched_once_and_shared_by_concurrent_deliveries(agency) -> None:
    spec, standin = agency
    outcomes = run(spec, 12, 4)
    assert all(isinstance(o, Delivered) for o in outcomes)
    assert standin.auth_calls("agency") == 1
    tokens = {r.headers["Authorization"] for r in standin.received("agency")}
    assert len(tokens) == 1 and tokens.pop().startswith("Bearer ")
    assert standin.refused("agency") == 0


@pytest.mark.parametrize("agency", [OAUTH], indirect=True)
def test_oauth2_token_is_renewed_before_it_expires(agency) -> None:
    spec, standin = agency
    standin.set_token_lifetime("agency", 1.0)  # renewed half-way: 0.5 s
    outcomes = run(spec, 1, 0.7, 1)
    assert all(isinstance(o, Delivered) for o in outcomes)
    assert standin.auth_calls("agency") == 2
    assert standin.refused("agency") == 0  # renewed ahead, never refused


@pytest.mark.parametrize("agency", [OAUTH], indirect=True)
def test_oauth2_token_is_renewed_once_when_the_api_answers_401(agency) -> None:
    spec, standin = agency
    outcomes = run(spec, 1, lambda: standin.expire_tokens("agency"), 1)
    assert all(isinstance(o, Delivered) for o in outcomes)
    assert standin.auth_calls("agency") == 2
    assert standin.refused("agency") == 1


@pytest.mark.parametrize("agency", [OAUTH], indirect=True)
def test_a_401_that_persists_with_a_fresh_token_is_permanent_after_one_retry(agency) -> None:
    spec, standin = agency
    standin.program("agency", Behaviour(status=401))
    (outcome,) = run(spec, 1)
    assert isinstance(outcome, PermanentFailure)
    assert outcome.reason.startswith("HTTP 401")
    assert len(standin.received("agency")) == 2
    assert standin.auth_calls("agency") == 2


@pytest.mark.parametrize("agency", [OAUTH], indirect=True)
@pytest.mark.parametrize(("status", "kind"), [(503, TransientFailure), (401, PermanentFailure)])
def test_a_failing_token_endpoint_is_classified_and_never_quoted_with_secrets(
    agency, status: int, kind: type
) -> None:
    spec, standin = agency
    standin.program("agency#auth", Behaviour(status=status, body={"error": SECRET}))
    (outcome,) = run(spec, 1)
    assert isinstance(outcome, kind)
    assert outcome.reason == f"HTTP {status}: OAuth2 token refused"
    assert standin.received("agency") == []


@pytest.mark.parametrize("agency", [SESSION], indirect=True)
def test_session_login_is_carried_and_renewed_when_the_session_expires(agency) -> None:
    spec, standin = agency
    outcomes = run(spec, 3, lambda: standin.expire_tokens("agency"), 2)
    assert all(isinstance(o, Delivered) for o in outcomes)
    assert standin.auth_calls("agency") == 2  # one login, one re-login after the 401
    assert standin.refused("agency") >= 1


@pytest.mark.parametrize("agency", [SESSION], indirect=True)
def test_a_short_session_is_renewed_before_it_lapses(agency) -> None:
    spec, standin = agency
    standin.set_token_lifetime("agency", 1.0)
    outcomes = run(spec, 1, 0.7, 1)
    assert all(isinstance(o, Delivered) for o in outcomes)
    assert standin.auth_calls("agency") == 2
    assert standin.refused("agency") == 0


@pytest.mark.parametrize("agency", [SESSION], indirect=True)
def test_a_refused_login_is_permanent_with_the_systems_own_words(agency) -> None:
    spec, standin = agency
    standin.program("agency#auth", Behaviour(body={"error_code": "-1", "message": "Sai mật khẩu"}))
    (outcome,) = run(spec, 1)
    assert isinstance(outcome, PermanentFailure)
    assert outcome.reason == "session login answer has no session: 'Sai mật khẩu'"


@pytest.mark.parametrize("agency", [None], indirect=True)
def test_basic_and_bearer_headers(agency) -> None:
    spec, standin = agency
    basic = target(spec.endpoint, {"kind": "basic"}, username="motcua", password="pw:1")
    bearer = target(
        spec.endpoint, {"kind": "bearer", "header": "X-Api-Key", "scheme": ""}, token="k"
    )
    run(basic, 1)
    run(bearer, 1)
    first, second = standin.received("agency")
    assert first.headers["Authorization"] == "Basic " + base64.b64encode(b"motcua:pw:1").decode()
    assert second.headers["X-Api-Key"] == "k"


@pytest.mark.parametrize("agency", [None], indirect=True)
def test_a_bearer_token_can_come_from_a_file(agency, tmp_path: Path) -> None:
    spec, standin = agency
    path = tmp_path / "token"
    path.write_text("tok-from-file\n", encoding="utf-8")
    token = resolve_credential("agency", "token", f"file:{path}")
    run(target(spec.endpoint, None, token=token), 1)
    assert standin.received("agency")[0].headers["Authorization"] == "Bearer tok-from-file"


def test_a_flow_without_its_credentials_is_refused_at_start_naming_them() -> None:
    with pytest.raises(AdapterConfigError, match="auth oauth2 needs credentials client_secret"):
        RestAdapter(target("http://127.0.0.1:9/x", OAUTH, client_id="x"))
    with pytest.raises(AdapterConfigError, match=r"option 'auth\.token_url': Field required"):
        RestAdapter(target("http://127.0.0.1:9/x", {"kind": "oauth2"}, client_id="x"))
