"""Run the prediction server with uvicorn (httptools + uvloop when installed) through
deckhand's guarded listener, on the public socket and, when asked for, the admin one."""

from __future__ import annotations

import importlib.util
import os
import socket
from typing import Any

from deckhand.listener import GuardedConfig, raise_open_files_limit
from deckhand.serving.config import CONFIG_ENV, ServeConfig


def _fastest(module: str, preferred: str, fallback: str) -> str:
    return preferred if importlib.util.find_spec(module) is not None else fallback


def uvicorn_options(config: ServeConfig) -> dict[str, object]:
    return {
        "loop": _fastest("uvloop", "uvloop", "asyncio"),
        "lifespan": "on",
        "access_log": False,
        "log_level": config.log_level,
        "timeout_keep_alive": 30,
        "backlog": 4096,
    }


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.set_inheritable(True)  # worker processes serve the same sockets
    return sock


def bind_sockets(config: ServeConfig) -> tuple[ServeConfig, list[socket.socket]]:
    """The public socket, and the admin socket when `admin_port` is set. Port 0 picks a free
    port; the returned config holds the ports really bound (the app tells the two apart
    by them)."""
    public = _bind(config.host, config.port)
    sockets = [public]
    update: dict[str, Any] = {"port": public.getsockname()[1]}
    if config.admin_port is not None:
        admin = _bind(config.admin_host, config.admin_port)
        sockets.append(admin)
        update["admin_port"] = admin.getsockname()[1]
    return config.model_copy(update=update), sockets


def guarded_config(config: ServeConfig, app: Any, **extra: Any) -> GuardedConfig:
    return GuardedConfig(app, limits=config.limits, **uvicorn_options(config), **extra)  # type: ignore[arg-type]


def run(config: ServeConfig) -> None:
    """Serve until interrupted. Several workers are separate processes sharing the sockets."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from deckhand.serving.app import create_app

    raise_open_files_limit(config.limits.max_connections + 256)
    config, sockets = bind_sockets(config)
    if config.workers == 1:
        uvicorn.Server(guarded_config(config, create_app(config))).run(sockets=sockets)
        return
    # Fail fast in this process (bad package, unknown monitoring spec) before forking.
    create_app(config).shutdown()
    os.environ[CONFIG_ENV] = config.model_dump_json()
    workers = guarded_config(config, "deckhand.serving.app:app_from_env", factory=True, workers=config.workers)
    Multiprocess(workers, sockets=sockets).run()
