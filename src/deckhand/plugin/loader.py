"""Finding a plugin class: a built-in name, an installed entry point (group
`deckhand.plugins`), a module name, or a path to a .py file — checked for conformance
when it is loaded, so a missing action is an error now and not at its first call."""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

from deckhand import extras
from deckhand.plugin.base import BosunPluginBase
from deckhand.plugin.constants import ACTIONS, ACTIONS_WITH_DEPLOYMENT
from deckhand.plugin.errors import PluginLoadError
from deckhand.registry import Registry, RegistryEntry

ENTRY_POINT_GROUP = "deckhand.plugins"

# The built-in plugins, named as bosun's documentation names them. Strings, so that resolving a name
# imports only that plugin (and the plugins, which import this package, are not imported here).
PLUGINS: Registry[type[BosunPluginBase] | ModuleType] = Registry(
    "plugin",
    {
        "filesystem": "deckhand.plugins.filesystem.plugin:FilesystemPlugin",
        "docker": "deckhand.plugins.docker.plugin:DockerPlugin",
        "kubernetes": "deckhand.plugins.kubernetes.plugin:KubernetesPlugin",
        "test": "deckhand.plugins.test.plugin:TestPlugin",
    },
    groups=(ENTRY_POINT_GROUP,),
    requirements=extras.PLUGINS,
    error=PluginLoadError,
    hint="it is not an importable module or a .py file either (see --list-plugins)",
)


# Other names the documented runner accepts for the built-ins (`--plugin k8s`), listed
# before the name as its --list-plugins prints them.
ALIASES: dict[str, tuple[str, ...]] = {
    "test": (),
    "filesystem": ("filesystem_plugin",),
    "docker": ("docker-plugin",),
    "kubernetes": ("k8s-plugin", "k8s"),
}
_CANONICAL = {alias: name for name, aliases in ALIASES.items() for alias in aliases}


def list_plugin_names() -> list[str]:
    """One line per plugin as the documented runner's --list-plugins prints it: its names,
    comma-separated (built-ins with their aliases, then installed entry points)."""
    return [",".join((*ALIASES.get(e.name, ()), e.name)) for e in list_plugins()]


def list_plugins() -> list[RegistryEntry]:
    """Built-ins, then installed entry points: name, target ("module:Class") and source."""
    return PLUGINS.entries()


def load_plugin_class(spec: str) -> type[BosunPluginBase]:
    """Resolve `spec` to a conforming plugin class or raise PluginLoadError saying why."""
    if not spec:
        raise PluginLoadError("--plugin is empty: give a built-in name, a module or a .py path")
    spec = _CANONICAL.get(spec, spec)
    if PLUGINS.is_builtin(spec):
        cls = _plugin_class(PLUGINS.load(spec), spec)
    elif _looks_like_path(spec):
        cls = _single_plugin_class(_import_path(spec), spec)
    else:
        module = _import_module_or_none(spec)
        if module is not None:
            cls = _single_plugin_class(module, spec)
        else:  # an installed entry point, or an error that lists what is known
            cls = _plugin_class(PLUGINS.load(spec), spec)
    check_conformance(cls)
    return cls


def check_conformance(cls: object) -> None:
    name = getattr(cls, "__name__", repr(cls))
    if not (isinstance(cls, type) and issubclass(cls, BosunPluginBase)):
        raise PluginLoadError(f"{name} is not a subclass of BosunPluginBase")
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if missing:
        raise PluginLoadError(
            f"plugin class {name} does not implement {', '.join(missing)} "
            "(every action of the plugin interface must be defined)"
        )
    for action in ACTIONS:
        method = getattr(cls, action, None)
        if not callable(method):
            raise PluginLoadError(f"plugin class {name}: {action} is not a method")
        wanted = 1 if action in ACTIONS_WITH_DEPLOYMENT else 0
        if not _accepts_positional(method, 1 + wanted):
            raise PluginLoadError(
                f"plugin class {name}: {action}{_parameters(method)} must take "
                f"{'one argument (the deployment)' if wanted else 'no arguments'} besides self"
            )


def _parameters(function: object) -> str:
    code = getattr(function, "__code__", None)
    return f"({', '.join(code.co_varnames[: code.co_argcount])})" if code else ""


def _accepts_positional(function: object, count: int) -> bool:
    """Whether a plain function can be called with `count` positional arguments.

    Read from the code object rather than inspect.signature: importing inspect costs a
    runner subprocess several milliseconds. Callables without a code object pass."""
    code = getattr(function, "__code__", None)
    if code is None:
        return True
    defaults = len(getattr(function, "__defaults__", None) or ())
    kw_defaults = getattr(function, "__kwdefaults__", None) or {}
    varargs = bool(code.co_flags & 0x04)  # CO_VARARGS
    kwonly_required = code.co_kwonlyargcount - len(kw_defaults)
    required = code.co_argcount - defaults
    return kwonly_required == 0 and required <= count and (varargs or count <= code.co_argcount)


def _looks_like_path(spec: str) -> bool:
    return spec.endswith(".py") or os.sep in spec or "/" in spec


def _import_path(spec: str) -> ModuleType:
    import importlib.util
    from pathlib import Path

    path = Path(spec)
    if path.suffix != ".py" and not path.exists():
        path = path.with_suffix(".py")  # bosun's documented form: --plugin sample_plugin/sample_plugin
    if path.is_dir():
        init = path / "__init__.py"
        if not init.exists():
            raise PluginLoadError(f"--plugin {spec}: directory has no __init__.py")
        path = init
    if not path.is_file():
        raise PluginLoadError(f"--plugin {spec}: no such file {path}")
    path = path.resolve()
    # Let the plugin import its sibling modules, as it would from its own directory.
    parent = str(path.parent.parent if path.name == "__init__.py" else path.parent)
    if parent not in sys.path:
        sys.path.insert(0, parent)
    module_name = path.parent.name if path.name == "__init__.py" else path.stem
    spec_obj = importlib.util.spec_from_file_location(module_name, path)
    if spec_obj is None or spec_obj.loader is None:
        raise PluginLoadError(f"--plugin {spec}: cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec_obj)
    sys.modules[module_name] = module
    try:
        spec_obj.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise PluginLoadError(f"--plugin {spec}: importing {path} failed: {type(exc).__name__}: {exc}") from exc
    return module


def _import_module_or_none(name: str) -> ModuleType | None:
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # the current directory counts for module lookup
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == name or name.startswith(exc.name + ".")):
            return None
        raise PluginLoadError(f"--plugin {name}: import failed: {exc}") from exc
    except Exception as exc:
        raise PluginLoadError(f"--plugin {name}: import failed: {type(exc).__name__}: {exc}") from exc


def _single_plugin_class(module: ModuleType, spec: str) -> type[BosunPluginBase]:
    classes = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, BosunPluginBase)
        and obj is not BosunPluginBase
        and obj.__module__ == module.__name__
    ]
    if not classes:
        raise PluginLoadError(
            f"--plugin {spec}: module {module.__name__} defines no plugin class "
            "(a subclass of BosunPluginBase from bosun.plugin.bosun_plugin_base)"
        )
    if len(classes) > 1:
        names = ", ".join(sorted(c.__name__ for c in classes))
        raise PluginLoadError(
            f"--plugin {spec}: module {module.__name__} defines {len(classes)} plugin classes "
            f"({names}); keep exactly one per module"
        )
    return classes[0]


def _plugin_class(found: type[BosunPluginBase] | ModuleType, spec: str) -> type[BosunPluginBase]:
    """A registry target is a class ("module:Class") or a module holding exactly one."""
    return _single_plugin_class(found, spec) if isinstance(found, ModuleType) else found
