"""The product's API served over real HTTP in a background thread, for emulators to call."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from app.http.api import create_app
from settings import Settings
from tests.stack import free_port


@contextmanager
def serving_api(settings: Settings) -> Iterator[str]:
    """Run create_app(settings) on a free port until the block ends; yields its base URL."""
    port = free_port()
    # log_config=None: uvicorn leaves the process's logging alone (tests of it run later).
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_config=None, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the API did not start on port {port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
