"""Layers stay clean (issue 8): no import cycles between modules — lazy and TYPE_CHECKING imports
included — and no package reaching into another package's private module; `__all__` is exactly
the public names of `featureline`."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import featureline

SRC = Path(featureline.__file__).resolve().parent

# Cycles that remain, to be removed; a new cycle fails the test. None remain.
KNOWN_CYCLES: list[set[str]] = []
# Private modules other packages may use: shared kernels at the top of the package.
SHARED_PRIVATE = {
    "featureline._sql",
    "featureline._time",
    "featureline._keys",
    "featureline._sqlite",
    "featureline._postgres",
    "featureline._urls",
    "featureline._ondemand",
    "featureline._frames",
}


def _modules() -> dict[str, Path]:
    out = {}
    for p in SRC.rglob("*.py"):
        parts = list(p.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for m, p in mods.items():
        pkg = m if p.name == "__init__.py" else m.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    mod = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    mod = node.module or ""
                names = [mod, *(f"{mod}.{a.name}" for a in node.names)]
            graph[m].update(n for n in names if n in mods and n != m)
    return graph


def _cycles(graph: dict[str, set[str]], nodes: list[str]) -> list[set[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[set[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in nodes:
        if v not in index:
            visit(v)
    return out


def test_no_new_import_cycles() -> None:
    mods = _modules()
    found = _cycles(_imports(mods), sorted(mods))
    new = [c for c in found if not any(c <= known for known in KNOWN_CYCLES)]
    assert not new, "import cycles: " + "; ".join(" <-> ".join(sorted(c)) for c in new)


def test_no_package_imports_another_packages_private_module() -> None:
    mods = _modules()
    bad = []
    for m, targets in _imports(mods).items():
        for t in targets:
            private = [
                i
                for i, part in enumerate(t.split("."))
                if part.startswith("_") and not part.startswith("__")
            ]
            if not private or t in SHARED_PRIVATE:
                continue
            if ".".join(t.split(".")[:2]) != ".".join(
                m.split(".")[:2]
            ):  # another top-level package's private module
                bad.append(f"{m} -> {t}")
    assert not set(bad) - KNOWN_PRIVATE_REACHES, "\n".join(sorted(set(bad) - KNOWN_PRIVATE_REACHES))


# None remain (issue 8, item 6); a new one fails the test.
KNOWN_PRIVATE_REACHES: set[str] = set()


def test_all_is_exactly_the_public_names() -> None:
    public = (
        {n for n in vars(featureline) if not n.startswith("_")}
        | set(featureline._LAZY)
        | {"__version__"}
    )
    modules = {n for n, v in vars(featureline).items() if type(v).__name__ == "module"}
    assert set(featureline.__all__) == public - modules - {"annotations", "TYPE_CHECKING", "Any"}
    assert len(featureline.__all__) == len(set(featureline.__all__))


def test_every_exception_class_lives_in_errors() -> None:
    """Exception classes are defined in `featureline.errors` only (private control-flow ones excepted)."""
    bad = []
    for m, p in _modules().items():
        if m in (
            "featureline.errors",
            "featureline.cli._common",
        ):  # CliError must derive from click's ClickException
            continue
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                bases = {
                    b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases
                }
                if any(b.endswith(("Error", "Exception")) for b in bases) or "Exception" in bases:
                    bad.append(f"{m}.{node.name}")
    assert not bad, "exception classes outside errors.py: " + ", ".join(sorted(bad))
