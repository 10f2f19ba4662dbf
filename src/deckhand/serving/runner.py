"""Run the prediction server with uvicorn (httptools + uvloop when installed)."""

from __future__ import annotations

import importlib.util
import os

from deckhand.serving.config import CONFIG_ENV, ServeConfig


def _fastest(module: str, preferred: str, fallback: str) -> str:
    return preferred if importlib.util.find_spec(module) is not None else fallback


def uvicorn_options(config: ServeConfig) -> dict[str, object]:
    return {
        "host": config.host,
        "port": config.port,
        "loop": _fastest("uvloop", "uvloop", "asyncio"),
        "http": _fastest("httptools", "httptools", "h11"),
        "lifespan": "on",
        "access_log": False,
        "log_level": config.log_level,
        "timeout_keep_alive": 30,
        "backlog": 4096,
    }


def run(config: ServeConfig) -> None:
    """Serve until interrupted. Several workers are separate processes sharing the port."""
    import uvicorn

    from deckhand.serving.app import create_app

    if config.workers == 1:
        uvicorn.run(create_app(config), **uvicorn_options(config))  # type: ignore[arg-type]
        return
    # Fail fast in this process (bad package, unknown monitoring spec) before forking.
    create_app(config).shutdown()
    os.environ[CONFIG_ENV] = config.model_dump_json()
    uvicorn.run(
        "deckhand.serving.app:app_from_env",
        factory=True,
        workers=config.workers,
        **uvicorn_options(config),  # type: ignore[arg-type]
    )
