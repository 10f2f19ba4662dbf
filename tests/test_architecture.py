"""The layer rule of docs/architecture.md, checked on the imports of every module in src/.

Every `import` and `from ... import` counts, wherever it stands: at module top, inside a
function (a lazy import is still a dependency) or under TYPE_CHECKING. Imports built at run
time (importlib with a computed name) are not seen.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Bottom to top. A module may import its own part and any part of a lower layer; parts of
# one layer are independent (neither imports the other). A part is a subpackage or a
# top-level module of deckhand, named without the `deckhand.` prefix; "deckhand" is the
# package's own __init__ (the version, nothing else).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("deckhand",),
    ("fsutil", "secrets", "extras", "package_limits", "listener", "testing", "yamlio"),
    ("registry",),
    ("plugin", "packages", "deployment_dirs"),
    ("client",),
    ("monitoring",),
    ("serving",),
    ("plugins",),
    ("agent", "server"),
    ("quickstart", "faults"),
    ("cli",),
)

# Deliberate exceptions, part of the rule (docs/architecture.md says why).
EXCEPTIONS: dict[tuple[str, str], str] = {}

# Known violations, to be deleted by the changes that remove them. Delete an entry when its
# import is gone (test_known_violations_still_exist says when).
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {}

LAYER_OF: dict[str, int] = {part: index for index, layer in enumerate(LAYERS) for part in layer}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. deckhand.serving.watcher
    target: str  # the imported module, e.g. deckhand.deployment_dirs
    path: Path
    line: int

    def where(self) -> str:
        return f"{self.path.relative_to(SRC.parent) if self.path.is_relative_to(SRC) else self.path}:{self.line}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    base = SRC.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _imports(path: Path) -> list[Import]:
    return _parse(path.read_text(encoding="utf-8"), _module_name(path), path.name == "__init__.py", path)


def _parse(text: str, module: str, is_package: bool, path: Path) -> list[Import]:
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            # `from deckhand import extras` imports the module deckhand.extras; `from deckhand
            # import __version__` imports deckhand itself.
            targets = [
                f"{source}.{alias.name}" if _is_module(f"{source}.{alias.name}") else source for alias in node.names
            ]
        else:
            continue
        ours = dict.fromkeys(t for t in targets if t.split(".")[0] in ("deckhand", "bosun"))
        found += [Import(module, t, path, node.lineno) for t in ours]
    return found


@functools.cache
def _all_imports() -> list[Import]:
    return [imp for path in sorted(SRC.rglob("*.py")) for imp in _imports(path)]


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _allowed(imp: Import) -> bool:
    if imp.target.split(".")[0] == "bosun" or imp.module.split(".")[0] == "bosun":
        return True  # test_bosun_only_renames_the_sdk
    mine, theirs = _part(imp.module), _part(imp.target)
    return mine == theirs or LAYER_OF[theirs] < LAYER_OF[mine]


def _rule(part: str) -> str:
    below = [p for layer in LAYERS[: LAYER_OF[part]] for p in layer]
    peers = [p for p in LAYERS[LAYER_OF[part]] if p != part]
    rule = f"{part} may import only itself and the layers below it ({', '.join(below) or 'nothing'})"
    if peers:
        rule += f"; its peers ({', '.join(peers)}) are independent of it"
    return rule + " — see docs/architecture.md"


def test_every_part_of_deckhand_is_in_a_layer():
    parts = {_part(_module_name(p)) for p in (SRC / "deckhand").rglob("*.py")}
    missing = sorted(parts - set(LAYER_OF))
    assert not missing, f"put {', '.join(missing)} in a layer of LAYERS and in docs/architecture.md"


def test_imports_follow_the_layers():
    broken = [
        f"{imp.where()}: {imp.module} imports {imp.target}; {_rule(_part(imp.module))}"
        for imp in _all_imports()
        if not _allowed(imp) and (imp.module, imp.target) not in EXCEPTIONS | KNOWN_VIOLATIONS
    ]
    assert not broken, "imports that break the layer rule:\n" + "\n".join(broken)


def test_known_violations_still_exist():
    seen = {(imp.module, imp.target) for imp in _all_imports()}
    gone = [f"{m} -> {t}" for m, t in {**EXCEPTIONS, **KNOWN_VIOLATIONS} if (m, t) not in seen]
    assert not gone, "no longer imported; delete from EXCEPTIONS/KNOWN_VIOLATIONS: " + "; ".join(gone)


def test_bosun_only_renames_the_sdk():
    for imp in _all_imports():
        if imp.module.split(".")[0] == "bosun":
            assert _part(imp.target) == "plugin" or imp.target.startswith("bosun"), (
                f"{imp.where()}: {imp.module} imports {imp.target}; bosun only re-exports deckhand.plugin"
            )
        else:
            assert not imp.target.startswith("bosun"), (
                f"{imp.where()}: {imp.module} imports {imp.target}; deckhand code imports deckhand.plugin, "
                "never its bosun aliases"
            )


def test_the_checker_sees_lazy_relative_and_from_package_imports(tmp_path):
    text = "def f():\n    from deckhand import extras, __version__\n    from ..serving import app\n"
    found = _parse(text, "deckhand.monitoring.m", False, tmp_path / "m.py")
    assert {(i.target, i.line) for i in found} == {("deckhand.extras", 2), ("deckhand", 2), ("deckhand.serving.app", 3)}
    assert [_allowed(i) for i in found] == [True, True, False]
    assert _rule("monitoring").startswith("monitoring may import only itself and the layers below it (deckhand, ")
