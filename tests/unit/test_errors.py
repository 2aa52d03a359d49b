"""One exception tree: configuration problems share a base; adapters' errors are translated."""

import pytest

from adapters.base import Adapter, TargetSpec
from bus import errors
from bus.broker import connection
from bus.broker.topology_check import PolicyCheckUnavailable
from bus.contract.rejections import Rejection
from bus.contract.schemas import SchemaLoadError
from bus.delivery import adapter_registry
from bus.delivery.adapter_registry import AdapterNotFound
from bus.observability.audit_writer import AuditWriterError
from bus.routes import RoutesError
from bus.routes.credentials import CredentialError
from bus.settings import SettingsError
from bus.store import StoreError


@pytest.mark.parametrize(
    "error",
    [SettingsError, SchemaLoadError, RoutesError, CredentialError, AdapterNotFound],
)
def test_what_an_operator_must_fix_is_a_config_error(error: type) -> None:
    assert issubclass(error, errors.ConfigError)


def test_broker_errors_are_one_family_still_importable_from_connection() -> None:
    assert connection.BrokerError is errors.BrokerError
    assert connection.FatalSetupError is errors.FatalSetupError
    assert issubclass(errors.FatalSetupError, errors.BrokerError)
    assert issubclass(PolicyCheckUnavailable, errors.BrokerError)
    assert not issubclass(errors.BrokerError, errors.ConfigError)


def test_store_and_audit_writer_errors_are_bus_errors_not_config() -> None:
    for error in (StoreError, AuditWriterError):
        assert issubclass(error, errors.DvcBusError)
        assert not issubclass(error, errors.ConfigError)


def test_a_refused_message_is_a_decision_not_an_error() -> None:
    assert not issubclass(Rejection, errors.DvcBusError)


def spec(adapter: str, **options: object) -> TargetSpec:
    return TargetSpec(
        name="danang",
        agency="000.00.00.H48",
        adapter=adapter,
        endpoint="http://127.0.0.1:9/x",
        connect_timeout=1.0,
        read_timeout=1.0,
        concurrency=1,
        options=dict(options),
        credentials={"username": "u", "password": "p"},
    )


def test_unknown_kind_names_the_target_and_the_kind() -> None:
    with pytest.raises(errors.AdapterConfigError, match=r"target 'danang' \(adapter 'nope'\)"):
        adapter_registry.build(spec("nope"))


def test_missing_wsdl_is_a_config_error_naming_target_kind_and_file() -> None:
    with pytest.raises(errors.AdapterConfigError) as caught:
        adapter_registry.build(spec("onestop-soap", wsdl="/nonexistent/missing.wsdl"))
    message = str(caught.value)
    assert "target 'danang' (adapter 'onestop-soap')" in message
    assert "/nonexistent/missing.wsdl" in message


def test_an_adapter_bug_at_construction_is_not_disguised_as_config(monkeypatch) -> None:
    class Broken(Adapter):
        def __init__(self, target: TargetSpec) -> None:
            raise KeyError("a bug")

    monkeypatch.setattr(adapter_registry, "load", lambda kind: Broken)
    with pytest.raises(KeyError):
        adapter_registry.build(spec("broken"))
