"""The package keeps the layer order written down in docs/architecture.md.

Every import of a ``sciclr`` module anywhere in a file (top level, inside functions, under
``TYPE_CHECKING``) counts: a lazy import from a higher layer is still a dependency on it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import REPO

SRC = REPO / "src"
DOC = REPO / "docs" / "architecture.md"


def layers() -> list[tuple[int, str, list[str]]]:
    block = re.search(r"```layers\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert block, f"{DOC}: no ```layers block"
    out = []
    for line in block.group(1).strip().splitlines():
        m = re.fullmatch(r"(\d+) (\w+): (.+)", line.strip())
        assert m, f"{DOC}: cannot read layer line {line!r}"
        out.append((int(m.group(1)), m.group(2), [p.strip() for p in m.group(3).split(",")]))
    return out


def layer_of(module: str, table: list[tuple[int, str, list[str]]]) -> int:
    best: tuple[int, int] | None = None
    for number, _, prefixes in table:
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (
                best is None or len(prefix) > best[1]
            ):
                best = (number, len(prefix))
    assert best is not None, f"{module} belongs to no layer of {DOC}"
    return best[0]


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / "sciclr").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def sciclr_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {m for m in found if m == "sciclr" or m.startswith("sciclr.")}


def test_the_layer_table_is_ordered_and_complete():
    table = layers()
    assert [n for n, _, _ in table] == list(range(len(table)))
    for name in modules():
        layer_of(name, table)  # every module has a layer


@pytest.mark.parametrize("module", sorted(modules()))
def test_no_module_imports_from_a_higher_layer(module):
    table = layers()
    mine = layer_of(module, table)
    bad = [
        f"{imported} (layer {layer_of(imported, table)})"
        for imported in sorted(sciclr_imports(modules()[module]))
        if layer_of(imported, table) > mine
    ]
    assert not bad, f"{module} (layer {mine}) imports from a higher layer: {bad}"


def test_the_layer_check_catches_an_upward_import(tmp_path):
    """The checker itself: a data module importing the training engine is found."""
    path = tmp_path / "bad.py"
    path.write_text("def f():\n    from sciclr.train.run import run_training\n")
    table = layers()
    assert {layer_of(m, table) for m in sciclr_imports(path)} == {layer_of("sciclr.train", table)}
    assert layer_of("sciclr.train.run", table) > layer_of("sciclr.data.dna", table)


def _does_something(path: Path) -> bool:
    """A package ``__init__`` that only re-exports (docstring, imports, ``__all__``) is not a
    module of its own in the map; one that defines anything is."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Expr | ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.Assign) and [getattr(t, "id", "") for t in node.targets] == [
            "__all__"
        ]:
            continue
        return True
    return False


def test_the_module_map_lists_every_module():
    text = DOC.read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `(sciclr/[\w/]+\.(?:py|yaml))` \|", text, re.M))
    files = {
        str(p.relative_to(SRC))
        for p in modules().values()
        if p.name != "__init__.py" or _does_something(p)
    }
    assert files - listed == set(), "modules missing from the map in docs/architecture.md"
    assert {f for f in listed if f.endswith(".py")} - files == set(), "map lists removed modules"
