"""The reference for bench/bench_edge.py: the seed's edge design, as one would write it.

FastAPI + uvicorn (``uvicorn[standard]``: uvloop, httptools, websockets), and per WebSocket
client its own ``redis.asyncio`` pub/sub: ``GET snapshot:<symbol>``, ``SUBSCRIBE
analytics:delta:<symbol>``, then every message forwarded with ``send_text``. So Redis sends each
delta once per client and redis-py parses it once per client.

    python -m bench.edge_ref --redis redis://127.0.0.1:6379/0 --port 8001

fastapi and uvicorn are in the ``bench`` extra only.
"""

from __future__ import annotations

import argparse
import contextlib

import redis.asyncio as aioredis
import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect


def make_app(redis_url: str) -> FastAPI:
    app = FastAPI()
    r = aioredis.Redis.from_url(redis_url, max_connections=100_000)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.websocket("/ws/{symbol}")
    async def ws(websocket: WebSocket, symbol: str) -> None:
        await websocket.accept()
        snap = await r.get(f"snapshot:{symbol}")
        if snap is not None:
            await websocket.send_text(snap.decode())
        pubsub = r.pubsub()
        await pubsub.subscribe(f"analytics:delta:{symbol}")
        try:
            async for msg in pubsub.listen():
                if msg["type"] == "message":
                    await websocket.send_text(msg["data"].decode())
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    return app


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.edge_ref")
    p.add_argument("--redis", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    a = p.parse_args()
    uvicorn.run(
        make_app(a.redis),
        host=a.host,
        port=a.port,
        log_level="warning",
        loop="uvloop",
        http="httptools",
        ws="websockets",
        backlog=4096,
    )


if __name__ == "__main__":
    main()
