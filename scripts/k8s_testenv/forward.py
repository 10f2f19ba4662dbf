"""A plain TCP forwarder: ``python -m k8s_testenv.forward LISTEN_HOST:PORT TARGET_HOST:PORT``.

The apiserver listens on 127.0.0.1 only. Pods reach it through the ``kubernetes``
Service, whose endpoint is the pod-bridge gateway (a host address only pods and the
host itself can reach), so this forwards gateway:port to 127.0.0.1:port. TLS passes
through untouched (the apiserver certificate names the gateway and the Service IP).
"""

from __future__ import annotations

import asyncio
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def _serve(listen: tuple[str, int], target: tuple[str, int]) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_server(handle, *listen)
    print(f"forwarding {listen[0]}:{listen[1]} -> {target[0]}:{target[1]}", flush=True)
    async with server:
        await server.serve_forever()


def _addr(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


if __name__ == "__main__":
    asyncio.run(_serve(_addr(sys.argv[1]), _addr(sys.argv[2])))
