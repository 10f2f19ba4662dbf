"""Resolving --plugin: built-ins, module names, .py paths and entry points, with
conformance checked at load time."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from deckhand.plugin.errors import PluginLoadError
from deckhand.plugin.loader import list_plugins, load_plugin_class

GOOD_PLUGIN = textwrap.dedent(
    """
    from bosun.plugin.action_status import ActionStatus, ActionStatusInfo
    from bosun.plugin.bosun_plugin_base import BosunPluginBase

    class {name}(BosunPluginBase):
        def plugin_start(self): return ActionStatusInfo(ActionStatus.OK, msg="{name}")
        def plugin_stop(self): return ActionStatusInfo(ActionStatus.OK)
        def deployment_list(self): return ActionStatusInfo(ActionStatus.OK, data={{}})
        def deployment_start(self, di): return ActionStatusInfo(ActionStatus.OK)
        def deployment_stop(self, deployment_id): return ActionStatusInfo(ActionStatus.OK)
        def deployment_replace_model(self, di): return ActionStatusInfo(ActionStatus.OK)
        def pe_status(self): return ActionStatusInfo(ActionStatus.OK)
        def deployment_status(self, di): return ActionStatusInfo(ActionStatus.OK)
    """
)


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith(("lp_", "ep_"))]:
        del sys.modules[name]


def test_builtin_names_resolve():
    assert load_plugin_class("filesystem").__name__ == "FilesystemPlugin"
    assert load_plugin_class("test").__name__ == "TestPlugin"


def test_module_in_current_directory_and_py_paths(plugin_dir: Path):
    (plugin_dir / "lp_mod.py").write_text(GOOD_PLUGIN.format(name="ModPlugin"))
    assert load_plugin_class("lp_mod").__name__ == "ModPlugin"
    sub = plugin_dir / "lp_pkg"
    sub.mkdir()
    (sub / "lp_file.py").write_text(GOOD_PLUGIN.format(name="FilePlugin"))
    assert load_plugin_class("./lp_pkg/lp_file.py").__name__ == "FilePlugin"
    # bosun's documented form: a path without the .py suffix.
    assert load_plugin_class("lp_pkg/lp_file").__name__ == "FilePlugin"


def test_module_with_no_or_two_plugin_classes_is_a_clear_error(plugin_dir: Path):
    (plugin_dir / "lp_none.py").write_text("X = 1\n")
    with pytest.raises(PluginLoadError, match="defines no plugin class"):
        load_plugin_class("lp_none")
    (plugin_dir / "lp_two.py").write_text(
        GOOD_PLUGIN.format(name="One") + GOOD_PLUGIN.format(name="Two").split("\n", 4)[-1]
    )
    with pytest.raises(PluginLoadError, match=r"defines 2 plugin classes \(One, Two\); keep exactly one"):
        load_plugin_class("lp_two.py")


def test_missing_action_is_reported_at_load(plugin_dir: Path):
    source = GOOD_PLUGIN.format(name="Partial").replace(
        "    def deployment_status(self, di): return ActionStatusInfo(ActionStatus.OK)\n", ""
    )
    (plugin_dir / "lp_partial.py").write_text(source)
    with pytest.raises(PluginLoadError, match="Partial does not implement deployment_status"):
        load_plugin_class("lp_partial")


def test_wrong_arity_is_reported_at_load(plugin_dir: Path):
    source = GOOD_PLUGIN.format(name="Arity").replace("def deployment_start(self, di)", "def deployment_start(self)")
    (plugin_dir / "lp_arity.py").write_text(source)
    with pytest.raises(PluginLoadError, match=r"deployment_start\(self\) must take one argument"):
        load_plugin_class("lp_arity")


def test_unknown_plugin_lists_what_was_tried():
    with pytest.raises(PluginLoadError, match=r"unknown plugin 'no_such_plugin_xyz'.*--list-plugins"):
        load_plugin_class("no_such_plugin_xyz")


def test_import_error_inside_plugin_is_reported(plugin_dir: Path):
    (plugin_dir / "lp_broken.py").write_text("import not_a_real_module_abc\n")
    with pytest.raises(PluginLoadError, match="import failed.*not_a_real_module_abc"):
        load_plugin_class("lp_broken")


def test_entry_point_plugins_are_found_and_listed(plugin_dir: Path, monkeypatch):
    # A real installed distribution, as pip would lay it out: module + dist-info.
    site = plugin_dir / "site"
    site.mkdir()
    (site / "ep_plugin_mod.py").write_text(GOOD_PLUGIN.format(name="EntryPlugin"))
    dist = site / "ep_plugin_dist-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-plugin-dist\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[deckhand.plugins]\nmyplugin = ep_plugin_mod:EntryPlugin\n")
    monkeypatch.syspath_prepend(str(site))
    assert load_plugin_class("myplugin").__name__ == "EntryPlugin"
    names = {p.name: p.source for p in list_plugins()}
    assert names["filesystem"] == "built-in" and names["myplugin"] == "ep-plugin-dist"
