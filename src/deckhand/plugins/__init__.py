"""The built-in plugins, one package each: filesystem, docker, kubernetes, test.

They are named in `deckhand.plugin.loader.PLUGINS` (by "module:Class" string, so this
package imports nothing and resolving a name imports only that plugin)."""
