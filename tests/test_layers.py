"""Imports point down: a module never imports (by name, inside a function, or through a "module:attr"
string) a part of a layer above its own. The layers are read from ARCHITECTURE.md, so the map a newcomer
reads is the one the code is held to, and a new folder or module must be placed on it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "driftwatch"
MAP = ROOT / "ARCHITECTURE.md"


def read_layers(text: str) -> list[tuple[str, set[str]]]:
    """The ```layers block of ARCHITECTURE.md: `name: part part ...` per line, the highest layer first."""
    block = re.search(r"```layers\n(.*?)```", text, re.S)
    assert block, "ARCHITECTURE.md has no ```layers block"
    layers = []
    for line in block.group(1).splitlines():
        name, _, parts = line.partition(":")
        if parts.strip():
            layers.append((name.strip(), set(parts.split())))
    return layers


def part_of(module: str) -> str:
    """The folder or top-level module a dotted driftwatch module belongs to (`driftwatch` itself is `__init__`)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def known_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").is_file() or (PACKAGE / relative / "__init__.py").is_file()


def imported_by(path: Path) -> set[str]:
    """Every driftwatch module the file names: import statements anywhere in it (module level, inside
    functions, under TYPE_CHECKING) and "driftwatch.x.y:attr" / "driftwatch.x.y" strings handed to importlib."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            if node.module == "driftwatch":  # `from driftwatch import config` names the module driftwatch.config
                found |= {f"driftwatch.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            reference = re.fullmatch(r"(driftwatch(?:\.\w+)+)(?::\w+)?", node.value)
            if reference:
                found.add(reference.group(1))
    return {name for name in found if name.startswith("driftwatch.") and known_module(name)}


def upward_imports(layers: list[tuple[str, set[str]]], modules: dict[str, Path]) -> list[str]:
    """Each import of a part on a higher layer than the importer's, as one readable line."""
    rank = {part: len(layers) - i for i, (_, parts) in enumerate(layers) for part in parts}
    layer_of = {part: name for name, parts in layers for part in parts}
    wrong = []
    for module, path in sorted(modules.items()):
        importer = part_of(module)
        for name in sorted(imported_by(path)):
            imported = part_of(name)
            if rank[imported] > rank[importer]:
                wrong.append(f"{module} ({layer_of[importer]}) imports {name} ({layer_of[imported]})")
    return wrong


def package_modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def parts_on_disk() -> set[str]:
    return {"__init__"} | {
        p.stem if p.is_file() else p.name
        for p in PACKAGE.iterdir()
        if (p.suffix == ".py" and p.name != "__init__.py") or (p / "__init__.py").is_file()
    }


@pytest.fixture(scope="module")
def layers() -> list[tuple[str, set[str]]]:
    return read_layers(MAP.read_text(encoding="utf-8"))


def test_every_folder_and_module_is_on_the_map(layers):
    placed = [part for _, parts in layers for part in parts]
    assert sorted(p for p in set(placed) if placed.count(p) > 1) == [], "a part placed on two layers"
    assert parts_on_disk() - set(placed) == set(), "place these in ARCHITECTURE.md's layers block"
    assert set(placed) - parts_on_disk() == set(), "ARCHITECTURE.md places parts that do not exist"


def test_no_layer_imports_a_layer_above_it(layers):
    assert upward_imports(layers, package_modules()) == []


def test_an_upward_import_is_caught_in_each_of_its_forms(layers, tmp_path):
    """The test above can fail: the lowest layer naming higher ones by statement, inside a function and
    through an importlib reference is reported, once per name; a downward import is not."""
    lowest = next(iter(sorted(layers[-1][1])))
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import driftwatch.errors\n"
        "from driftwatch import store\n"
        "def later():\n    from driftwatch.report import build\n"
        'HANDLER = "driftwatch.alerts.dispatch:send"\n'
    )
    wrong = upward_imports(layers, {f"driftwatch.{lowest}": sample})
    assert [line.split(" imports ")[1].split()[0] for line in wrong] == [
        "driftwatch.alerts.dispatch",
        "driftwatch.report",
        "driftwatch.store",
    ]
    assert upward_imports(layers, {"driftwatch.cli.sample": sample}) == []
