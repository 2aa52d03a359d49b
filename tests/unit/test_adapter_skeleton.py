"""What ``dvcbus adapters new`` writes depends on the SDK only, and says which SDK it needs."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

import adapters
from bus.kit.skeleton import write_skeleton
from tests.unit.test_adapter_sdk_seal import imports_of

FIRST_PARTY = ("adapters", "bus")


@pytest.fixture
def package(tmp_path: Path) -> Path:
    return write_skeleton("hanoi-igate", tmp_path)


def test_the_generated_package_imports_only_the_sdk_and_its_test_kit(package: Path) -> None:
    used = {
        name
        for path in package.rglob("*.py")
        for _line, name in imports_of(path, root=package)
        if name.split(".")[0] in FIRST_PARTY
    }
    allowed = {"adapters", "adapters.testing"} | {f"adapters.{n}" for n in adapters.__all__}
    allowed |= {f"adapters.testing.{n}" for n in adapters.testing.__all__}
    assert used <= allowed, used - allowed
    assert "adapters.contract_headers" in used


def test_the_generated_adapter_refuses_an_sdk_of_another_major_version(
    package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(package / "src"))
    name = "dvcbus_adapter_hanoi_igate.adapter"
    try:
        assert importlib.import_module(name).SUPPORTED_SDK == ((1, 0), (2, 0))
        sys.modules.pop(name)
        monkeypatch.setattr(adapters, "SDK_VERSION", "2.0")
        with pytest.raises(ImportError, match=r"written for adapter SDK >=1.0,<2; .* 2\.0"):
            importlib.import_module(name)
    finally:
        for loaded in [m for m in sys.modules if m.startswith("dvcbus_adapter_hanoi_igate")]:
            sys.modules.pop(loaded)
