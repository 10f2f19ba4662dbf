"""deckhand.registry: built-ins imported only when asked for, entry points found, unknown
names answered with the known ones, a missing extra named with its pip command."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from deckhand import extras
from deckhand.registry import Registry, RegistryError


class ThingError(ValueError):
    pass


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory on sys.path where tests write modules and distributions."""
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _module(site: Path, name: str, body: str = "class Thing:\n    class Inner:\n        pass\n") -> str:
    (site / f"{name}.py").write_text(body)
    sys.modules.pop(name, None)
    return name


def _distribution(site: Path, dist: str, entry_points: str) -> None:
    """A distribution as pip lays it out: dist-info with METADATA and entry_points.txt."""
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)


def test_built_ins_are_imported_only_when_loaded(site: Path) -> None:
    name = _module(site, "reg_lazy_builtin")
    things: Registry[type] = Registry("thing", {"a": f"{name}:Thing", "b": f"{name}:Thing.Inner", "m": name})
    assert "a" in things and things.names() == ["a", "b", "m"] and things.is_builtin("a")
    assert [(e.name, e.source) for e in things.entries()] == [("a", "built-in"), ("b", "built-in"), ("m", "built-in")]
    assert name not in sys.modules  # listing and membership import nothing
    assert things.load("a").__name__ == "Thing"
    assert things.load("b").__qualname__ == "Thing.Inner"  # dotted attributes, as entry points allow
    assert things.load("m") is sys.modules[name]  # "module" alone: the module


def test_the_real_registries_import_no_implementation() -> None:
    """Importing the four registries and listing them imports no plugin, format or channel
    (a fresh interpreter: this one has imported them all by now)."""
    code = textwrap.dedent(
        """
        import sys
        from deckhand.monitoring.channels import CHANNELS
        from deckhand.packages.formats import FORMATS
        from deckhand.plugin.loader import PLUGINS
        from deckhand.serving.observers import OBSERVERS

        assert {"filesystem", "docker", "kubernetes", "test"} <= set(PLUGINS.names())
        assert FORMATS.names() == ["mlflow", "onnx", "python", "sklearn"]
        assert {"spool", "amqp", "amqps"} <= set(CHANNELS.names())
        assert {"memory", "spool", "amqp", "amqps"} <= set(OBSERVERS.names())
        implementations = {
            *(f"deckhand.plugins.{name}.plugin" for name in PLUGINS.names()),
            *(f"deckhand.packages.formats.{name}_format" for name in FORMATS.names()),
            "deckhand.monitoring.channels.spool",
            "deckhand.monitoring.channels.rabbitmq",
        }
        print(sorted(implementations & set(sys.modules)))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_entry_points_are_found_in_each_group_in_order(site: Path) -> None:
    name = _module(site, "reg_ep_mod")
    _distribution(site, "reg-ep-dist", f"[deckhand.test_things]\nfancy = {name}:Thing\n")
    _distribution(site, "reg-ep-old", f"[deckhand.test_things_old]\nold = {name}:Thing.Inner\nfancy = {name}\n")
    things: Registry[type] = Registry(
        "thing", {"plain": f"{name}:Thing"}, groups=("deckhand.test_things", "deckhand.test_things_old")
    )
    assert not things.is_builtin("fancy") and "fancy" in things and "nope" not in things
    assert things.load("fancy").__name__ == "Thing"  # the first group wins
    assert things.load("old").__name__ == "Inner"
    assert {e.name: e.source for e in things.entries()} == {
        "plain": "built-in",
        "fancy": "reg-ep-dist",
        "old": "reg-ep-old",
    }


def test_an_unknown_name_lists_the_known_ones(site: Path) -> None:
    name = _module(site, "reg_unknown_mod")
    _distribution(site, "reg-unknown-dist", f"[deckhand.test_unknown]\nthird = {name}:Thing\n")
    things: Registry[type] = Registry(
        "thing",
        {"b": f"{name}:Thing", "a": f"{name}:Thing"},
        groups=("deckhand.test_unknown",),
        error=ThingError,
        hint="see --list-things",
    )
    with pytest.raises(ThingError) as caught:
        things.load("zzz", context="--thing zzz")
    assert str(caught.value) == (
        "--thing zzz: unknown thing 'zzz'; known things: a, b, third "
        "(others are installed as entry points in group 'deckhand.test_unknown'); see --list-things"
    )
    with pytest.raises(RegistryError, match=r"unknown widget 'x'; known widgets: none$"):
        Registry("widget", {}).load("x")


def test_a_built_in_whose_extra_is_missing_names_the_extra(site: Path) -> None:
    name = _module(site, "reg_needs_extra", "import reg_no_such_package_abc\n")
    needs = extras.Requirement("the fancy thing", "fancy", "reg_no_such_package_abc")
    things: Registry[type] = Registry("thing", {"fancy": f"{name}:Thing"}, requirements={"fancy": needs})
    with pytest.raises(RegistryError) as caught:
        things.load("fancy", context="environment e1")
    message = str(caught.value)
    assert message.startswith("environment e1: the fancy thing needs the Python package `reg_no_such_package_abc`")
    assert "pip install 'deckhand[fancy]'" in message
    assert name not in sys.modules  # refused before importing anything


def test_import_failures_say_what_and_where(site: Path) -> None:
    broken = _module(site, "reg_broken_mod", "raise RuntimeError('boom')\n")
    fine = _module(site, "reg_fine_mod")
    things: Registry[type] = Registry("thing", {"broken": f"{broken}:Thing", "typo": f"{fine}:Thnig"})
    with pytest.raises(RegistryError, match=re.escape(f"thing 'broken' (built-in: {broken}:Thing): cannot import")):
        things.load("broken")
    with pytest.raises(RegistryError, match=f"{fine} has no attribute Thnig"):
        things.load("typo")


def test_registered_names_win_and_can_be_removed(site: Path) -> None:
    name = _module(site, "reg_registered_mod")
    things: Registry[object] = Registry("thing", {"a": f"{name}:Thing"})
    marker = object()
    things.register("a", marker)
    things.register("b", f"{name}:Thing.Inner")
    assert things.load("a") is marker and not things.is_builtin("a")
    assert things.load("b").__name__ == "Inner"  # type: ignore[attr-defined]
    assert {e.name: e.source for e in things.entries()} == {"a": "registered", "b": "registered"}
    things.unregister("a")
    things.unregister("b")
    assert things.load("a").__name__ == "Thing" and "b" not in things  # type: ignore[attr-defined]
