"""Settings: defaults, TOML file, DVCBUS_* environment, with precise errors."""

from pathlib import Path

import pytest

from bus.settings import Settings, SettingsError


def test_env_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "s.toml"
    cfg.write_text('namespace = "fromfile"\nrouter_prefetch = 50\n')
    monkeypatch.setenv("DVCBUS_NAMESPACE", "fromenv")
    s = Settings.load(cfg)
    assert (s.namespace, s.router_prefetch) == ("fromenv", 50)


def test_bad_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DVCBUS_ROUTER_PREFETCH", "lots")
    with pytest.raises(SettingsError, match="router_prefetch"):
        Settings.load()


def test_unknown_key_in_file_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "s.toml"
    cfg.write_text("prefech = 5\n")
    with pytest.raises(SettingsError, match="prefech"):
        Settings.load(cfg)


def test_shipped_default_config_loads() -> None:
    root = Path(__file__).resolve().parents[2]
    assert Settings.load(root / "config" / "default.toml").namespace == "bus"


def test_a_refused_value_names_where_it_was_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "s.toml"
    cfg.write_text("router_prefetch = 0\n")
    with pytest.raises(SettingsError, match=rf"^{cfg}: router_prefetch: "):
        Settings.load(cfg)
    monkeypatch.setenv("DVCBUS_ROUTER_PREFETCH", "lots")
    with pytest.raises(SettingsError, match=r"^DVCBUS_ROUTER_PREFETCH: router_prefetch: "):
        Settings.load(cfg)
