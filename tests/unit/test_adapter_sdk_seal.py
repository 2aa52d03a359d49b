"""The adapter SDK is sealed: nothing under adapters/ depends on the bus (bus → adapters only).

About 150 agency systems are connected by plug-ins written against ``adapters``; the core
must be free to move without breaking them. Proved twice: statically, on every import
statement of every module (function-local and TYPE_CHECKING ones included), and at
runtime, by importing every adapters module in a fresh interpreter.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / "adapters"
FORBIDDEN = "bus"
REPO_CODE = ("adapters", "bus", "tests", "scripts", "benchmarks")
DYNAMIC_IMPORTERS = frozenset({"import_module", "__import__"})


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(module: str | None, level: int, importer: Path, root: Path) -> str:
    """The absolute name a (possibly relative) ``from ... import`` refers to."""
    if level == 0:
        return module or ""
    package = module_name(importer, root).split(".")
    if importer.name != "__init__.py":
        package.pop()
    base = package[: len(package) - (level - 1)]
    return ".".join([*base, module] if module else base)


def imports_of(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """Every module ``path`` imports, anywhere in it, with the line that does it."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = resolve(node.module, node.level, path, root)
            yield node.lineno, base
            for alias in node.names:  # `from . import x` imports a module named x
                yield node.lineno, f"{base}.{alias.name}" if base else alias.name
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            arg = node.args[0] if node.args else None
            if (
                name in DYNAMIC_IMPORTERS
                and isinstance(arg, ast.Constant)
                and isinstance(arg.value, str)
            ):
                yield node.lineno, arg.value


def is_bus(name: str) -> bool:
    return name == FORBIDDEN or name.startswith(FORBIDDEN + ".")


def sdk_modules() -> list[Path]:
    return sorted(SDK.rglob("*.py"))


def test_the_import_graph_walker_sees_local_type_checking_and_relative_imports(
    tmp_path: Path,
) -> None:
    # The check is only as good as its walker: prove it on a module that hides its imports.
    package = tmp_path / "adapters" / "kinds"
    package.mkdir(parents=True)
    probe = package / "probe.py"
    probe.write_text(
        textwrap.dedent(
            """
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from bus.contract import envelope
            def later():
                import bus.store
                from .. import message
                importlib.import_module("bus.cli")
            """
        )
    )
    found = {name for _, name in imports_of(probe, root=tmp_path)}
    assert {"bus.contract", "bus.store", "adapters.message", "bus.cli"} <= found


def test_no_module_under_adapters_imports_the_bus() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: imports {name}"
        for path in sdk_modules()
        for line, name in imports_of(path)
        if is_bus(name)
    ]
    assert len(sdk_modules()) > 15  # the walk really covered the SDK
    assert not offenders, "adapters/ must not depend on bus/:\n" + "\n".join(offenders)


def test_nothing_in_the_repo_imports_a_deprecated_path() -> None:
    # The shims are for plug-ins outside the repo; inside it, one release later they go.
    from tests.unit.test_adapter_sdk_shims import SHIMS

    shim_files = {ROOT / (old.replace(".", "/") + ".py") for old in SHIMS}
    own = {Path(__file__).resolve(), ROOT / "tests" / "unit" / "test_adapter_sdk_shims.py"}
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: imports {name}"
        for top in REPO_CODE
        for path in sorted((ROOT / top).rglob("*.py"))
        if path not in shim_files | own
        for line, name in imports_of(path)
        if name in SHIMS
    ]
    assert not offenders, "import the new paths:\n" + "\n".join(offenders)


def test_importing_every_adapters_module_loads_no_bus_module() -> None:
    script = textwrap.dedent(
        """
        import importlib, pkgutil, sys, warnings
        warnings.simplefilter("ignore", DeprecationWarning)
        import adapters
        names = [m.name for m in pkgutil.walk_packages(adapters.__path__, "adapters.")]
        for name in names:
            importlib.import_module(name)
        leaked = sorted(m for m in sys.modules if m == "bus" or m.startswith("bus."))
        assert len(names) > 15, names
        assert not leaked, leaked
        print(len(names))
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_production_adapter_modules_load_no_test_kit() -> None:
    # Fakes and stand-ins live in adapters.testing; a kind reaches them only from its
    # standin_profile, which production never calls. (Names come from the files:
    # pkgutil.walk_packages would import adapters.testing itself to walk it.)
    production = [
        module_name(path, ROOT)
        for path in sdk_modules()
        if not module_name(path, ROOT).startswith("adapters.testing")
    ]
    assert "adapters.kinds.portal_sync" in production
    script = textwrap.dedent(
        """
        import importlib, sys, warnings
        warnings.simplefilter("ignore", DeprecationWarning)
        for name in sys.argv[1:]:
            importlib.import_module(name)
        loaded = sorted(m for m in sys.modules if m.startswith("adapters.testing"))
        assert not loaded, loaded
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script, *production],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
