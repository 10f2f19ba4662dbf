"""Built-in plugins, named as the seed names them. Values are "module:Class" so that
resolving a name imports only that plugin."""

BUILTIN_PLUGINS: dict[str, str] = {
    "filesystem": "deckhand.plugins.filesystem.plugin:FilesystemPlugin",
    "docker": "deckhand.plugins.docker.plugin:DockerPlugin",
    "kubernetes": "deckhand.plugins.kubernetes.plugin:KubernetesPlugin",
    "test": "deckhand.plugins.test.plugin:TestPlugin",
}
