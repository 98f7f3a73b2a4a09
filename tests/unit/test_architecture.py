"""Structure rules of the code base, checked from the source (ARCHITECTURE.md §5): no import
cycles, the import direction core ← protocol ← rpc ← supervisor/worker, plugins on the public
API only, and small modules."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.imports import ImportGraph

TAKOPI = Path(__file__).resolve().parents[2] / "takopi"
MAX_LINES = 600
OVERSIZED = {
    # The reference's module path for the runner base classes (JsonlSubprocessRunner and the
    # hooks plugins override by name): plugins import it as one module.
    "takopi/runner.py": "reference module path kept whole for plugins",
}
STRICT_PACKAGES = ("takopi.supervisor", "takopi.worker", "takopi.rpc", "takopi.protocol")
"""Not even function-level (lazy) imports may form a cycle through these."""


@pytest.fixture(scope="module")
def graph() -> ImportGraph:
    return ImportGraph.of(TAKOPI)


def _in(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def test_no_import_cycles(graph: ImportGraph) -> None:
    assert graph.cycles() == []


def test_no_cycles_through_the_supervisor_side_even_with_lazy_imports(graph: ImportGraph) -> None:
    cycles = [c for c in graph.cycles(with_lazy=True) if any(_in(m, STRICT_PACKAGES) for m in c)]
    assert cycles == []


@pytest.mark.parametrize(
    ("packages", "forbidden"),
    [
        (("takopi.protocol",), ("takopi.rpc", "takopi.supervisor", "takopi.worker")),
        (("takopi.rpc",), ("takopi.supervisor", "takopi.worker")),
        (("takopi.worker",), ("takopi.supervisor",)),
        (("takopi.supervisor",), ("takopi.worker",)),
        (
            ("takopi.runners", "takopi.telegram", "takopi.console"),
            ("takopi.supervisor", "takopi.worker", "takopi.rpc"),
        ),
    ],
)
def test_import_direction(
    graph: ImportGraph, packages: tuple[str, ...], forbidden: tuple[str, ...]
) -> None:
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in graph.edges(with_lazy=True).items()
        if _in(module, packages)
        for target in targets
        if _in(target, forbidden)
    )
    assert wrong == []


def test_modules_stay_small() -> None:
    too_long = {}
    for path in sorted(TAKOPI.rglob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        name = str(path.relative_to(TAKOPI.parent))
        if lines > MAX_LINES and name not in OVERSIZED:
            too_long[name] = lines
    assert too_long == {}
    # Exceptions that no longer need to be one must leave the list.
    for name in OVERSIZED:
        assert len((TAKOPI.parent / name).read_text().splitlines()) > MAX_LINES, name


def test_the_cycle_check_sees_cycles(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import c\n"
    )
    (package / "c.py").write_text("def f():\n    from . import a\n")
    (package / "d.py").write_text("from .a import x\n")
    graph = ImportGraph.of(package)
    assert graph.cycles() == []  # c -> a only inside a function
    assert graph.cycles(with_lazy=True) == [["pkg.a", "pkg.c", "pkg.sub.b"]]
    assert graph.edges()["pkg.d"] == {"pkg.a"}
