"""The import graph of a package, read from its source with :mod:`ast` (nothing imported)."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ImportGraph:
    """``module -> modules of the same package it imports``.

    ``top_level`` counts imports executed when the module is imported, including those under
    ``if TYPE_CHECKING:`` and in class bodies (type checkers follow them); ``lazy`` adds the
    ones inside functions.
    """

    files: dict[str, Path] = field(default_factory=dict)
    top_level: dict[str, set[str]] = field(default_factory=dict)
    lazy: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, package_dir: Path) -> ImportGraph:
        """Scan every ``.py`` file under ``package_dir`` (a package named after it)."""
        graph = cls()
        root = package_dir.parent
        for path in sorted(package_dir.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            graph.files[".".join(parts)] = path
        for module, path in graph.files.items():
            top: set[str] = set()
            lazy: set[str] = set()
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            graph._collect(module, path.name == "__init__.py", tree.body, top, lazy, False)
            graph.top_level[module] = top - {module}
            graph.lazy[module] = lazy - {module}
        return graph

    def _resolve(self, name: str) -> str | None:
        while name:
            if name in self.files:
                return name
            name = name.rpartition(".")[0]
        return None

    def _targets(self, module: str, is_package: bool, node: ast.stmt) -> Iterable[str]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = self._resolve(alias.name)
                if target is not None:
                    yield target
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, base] if base else package)
            for alias in node.names:
                # ``from pkg import sub`` imports the submodule when there is one.
                target = self._resolve(f"{base}.{alias.name}" if base else alias.name)
                if target is not None and target != base and f"{base}.{alias.name}" != target:
                    target = self._resolve(base)
                if target is not None:
                    yield target

    def _collect(
        self,
        module: str,
        is_package: bool,
        body: list[ast.stmt],
        top: set[str],
        lazy: set[str],
        in_function: bool,
    ) -> None:
        for node in body:
            (lazy if in_function else top).update(self._targets(module, is_package, node))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                self._collect(module, is_package, node.body, top, lazy, True)
                continue
            for name in ("body", "orelse", "finalbody"):
                nested = getattr(node, name, None)
                if isinstance(nested, list):
                    self._collect(module, is_package, nested, top, lazy, in_function)
            for handler in getattr(node, "handlers", []) or []:
                self._collect(module, is_package, handler.body, top, lazy, in_function)

    def edges(self, *, with_lazy: bool = False) -> dict[str, set[str]]:
        """The graph's edges (module-level imports, plus function-level ones if asked)."""
        if not with_lazy:
            return {m: set(t) for m, t in self.top_level.items()}
        return {m: self.top_level[m] | self.lazy[m] for m in self.files}

    def cycles(self, *, with_lazy: bool = False) -> list[list[str]]:
        """Strongly connected groups of more than one module (each an import cycle)."""
        edges = self.edges(with_lazy=with_lazy)
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        found: list[list[str]] = []
        counter = 0

        def visit(start: str) -> None:  # iterative Tarjan
            nonlocal counter
            work = [(start, iter(sorted(edges.get(start, ()))))]
            index[start] = low[start] = counter
            counter += 1
            stack.append(start)
            on_stack.add(start)
            while work:
                node, children = work[-1]
                child = next(children, None)
                if child is not None:
                    if child not in index:
                        index[child] = low[child] = counter
                        counter += 1
                        stack.append(child)
                        on_stack.add(child)
                        work.append((child, iter(sorted(edges.get(child, ())))))
                    elif child in on_stack:
                        low[node] = min(low[node], index[child])
                    continue
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        found.append(sorted(group))

        for module in sorted(self.files):
            if module not in index:
                visit(module)
        return found


__all__ = ["ImportGraph"]
