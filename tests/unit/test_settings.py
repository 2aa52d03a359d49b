"""Settings: defaults, TOML file, DVCBUS_* environment, with precise errors."""

import tomllib
from pathlib import Path

import pytest

from bus.settings import PROJECT_ROOT, Settings, SettingsError


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


DEFAULT_TOML = PROJECT_ROOT / "config" / "default.toml"


def test_default_toml_lists_every_setting_and_nothing_else() -> None:
    written = tomllib.loads(DEFAULT_TOML.read_text(encoding="utf-8"))
    missing = set(Settings.model_fields) - set(written)
    unknown = set(written) - set(Settings.model_fields)
    assert not missing, f"settings missing from config/default.toml: {sorted(missing)}"
    assert not unknown, f"config/default.toml sets what Settings lacks: {sorted(unknown)}"


def test_default_toml_gives_the_same_values_as_the_settings_defaults() -> None:
    written = Settings.model_validate(tomllib.loads(DEFAULT_TOML.read_text(encoding="utf-8")))
    built_in = Settings()
    differ = {
        name: (getattr(written, name), getattr(built_in, name))
        for name in Settings.model_fields
        if getattr(written, name) != getattr(built_in, name)
    }
    assert not differ, f"config/default.toml and Settings disagree (file, built-in): {differ}"


def test_a_relative_path_setting_is_from_the_project_root() -> None:
    settings = Settings(routes_file="deploy/routes.yaml", schemas_dir="contracts")
    assert settings.routes_file == PROJECT_ROOT / "deploy" / "routes.yaml"
    assert settings.schemas_dir == PROJECT_ROOT / "contracts"


def test_an_absolute_path_setting_is_kept(tmp_path: Path) -> None:
    assert Settings(routes_file=tmp_path / "r.yaml").routes_file == tmp_path / "r.yaml"


def test_an_empty_schemas_dir_means_the_default_schemas() -> None:
    assert Settings(schemas_dir="").schemas_dir is None


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


def test_the_gateway_cannot_accept_what_the_router_would_refuse_as_too_large(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DVCBUS_GATEWAY_MAX_BODY_BYTES", "2000000")
    with pytest.raises(SettingsError, match=r"^settings: gateway_max_body_bytes \(2000000\) must"):
        Settings.load()


def test_senders_yaml_is_beside_routes_yaml_unless_set(tmp_path: Path) -> None:
    assert Settings(routes_file=tmp_path / "r.yaml").senders_path == tmp_path / "senders.yaml"
    assert Settings(senders_file="deploy/s.yaml").senders_path == PROJECT_ROOT / "deploy/s.yaml"
