"""``dvcbus adapters new``: the generated package installs, passes its test, registers, conforms."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import yaml

from tests.integration.harness import ROOT


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env={**os.environ, **(env or {}), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_a_generated_skeleton_installs_passes_its_test_and_conforms(tmp_path: Path) -> None:
    run(sys.executable, "-m", "bus.cli", "adapters", "new", "hanoi-igate", "-d", tmp_path, cwd=ROOT)
    package = tmp_path / "dvcbus-adapter-hanoi-igate"
    assert (package / "src/dvcbus_adapter_hanoi_igate/adapter.py").is_file()

    # A fresh virtual environment that sees the project (and its dependencies) through a .pth
    # file, so the project's own environment is never touched by the install.
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                  cwd=tmp_path).strip()  # fmt: skip
    project_site = sysconfig.get_paths()["purelib"]
    Path(purelib, "dvcbus-project.pth").write_text(
        f"import site; site.addsitedir({project_site!r})\n", encoding="utf-8"
    )
    run(python, "-m", "pip", "install", "-q", "--no-deps", "-e", package, cwd=tmp_path)

    tested = run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=package)
    assert "1 passed" in tested

    listed = run(python, "-m", "bus.cli", "adapters", "list", cwd=ROOT)
    row = next(line for line in listed.splitlines() if "hanoi-igate" in line)
    assert "plug-in" in row and "dvcbus-adapter-hanoi-igate" in row and "0.1.0" in row
    # ... and the project's environment does not know it.
    mine = run(sys.executable, "-m", "bus.cli", "adapters", "list", cwd=ROOT)
    assert "hanoi-igate" not in mine

    routes = yaml.safe_load((ROOT / "routes.yaml").read_text(encoding="utf-8"))
    routes["targets"]["hanoi"].update(adapter="hanoi-igate", options={"system_code": "HN"})
    routes_file = tmp_path / "routes.yaml"
    routes_file.write_text(yaml.safe_dump(routes, allow_unicode=True, sort_keys=False))
    checked = run(python, "-m", "bus.cli", "adapters", "test", "hanoi", "--routes", routes_file,
                  "--timeout", "0.5", cwd=ROOT)  # fmt: skip
    assert "Conformance of target hanoi (adapter hanoi-igate)" in checked
    assert "FAIL" not in checked


def test_a_bad_kind_name_or_an_existing_directory_is_refused(tmp_path: Path) -> None:
    for name in ("Hanoi", "x", "a--b", "9lives"):
        done = subprocess.run(
            [sys.executable, "-m", "bus.cli", "adapters", "new", name, "-d", str(tmp_path)],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode != 0 and "is not an adapter kind name" in done.stderr
    run(sys.executable, "-m", "bus.cli", "adapters", "new", "ok-kind", "-d", tmp_path, cwd=ROOT)
    again = subprocess.run(
        [sys.executable, "-m", "bus.cli", "adapters", "new", "ok-kind", "-d", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert again.returncode != 0 and "already exists" in again.stderr
