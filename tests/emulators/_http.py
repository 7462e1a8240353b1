"""What the tracker emulators share: serving over real HTTP on 127.0.0.1, routing by path
template, request counts, fault injection and the per-response contract check.

A subclass supplies its route table and `handle`; the rest (start/stop, `counts`, `requests`,
`fail`/`slow` bookkeeping, `contract_errors`/`undocumented`) behaves the same for every tracker.
"""

from __future__ import annotations

import fnmatch
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, Self

Json = Any


@dataclass
class Reply:
    status: int
    body: Json = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    """Answer the next `remaining` matching requests with `status`, `body` and `headers`."""

    remaining: int
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    method: str | None = None
    path: str | None = None  # a route template ("/repos/{owner}/{repo}/issues") or an fnmatch glob

    def matches(self, method: str, path: str, template: str | None) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        if self.path is None:
            return True
        return self.path == template or fnmatch.fnmatchcase(path, self.path)


@dataclass
class Slowdown:
    remaining: int
    seconds: float
    method: str | None = None
    path: str | None = None

    def matches(self, method: str, path: str, template: str | None) -> bool:
        probe = Fault(1, 0, {}, {}, self.method, self.path)
        return probe.matches(method, path, template)


@dataclass
class RecordedRequest:
    method: str
    path: str
    template: str | None
    status: int
    at: float  # when the request arrived (epoch seconds)
    answered: float = 0.0  # when its answer was ready


class CheckResult(Protocol):
    documented: bool
    errors: list[str]


class Contract(Protocol):
    def check(self, method: str, template: str, status: int, body: Any) -> CheckResult: ...

    def check_request(self, method: str, template: str, body: Any) -> list[str]: ...


@dataclass
class Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    handler: Callable[[Any], Reply]


def compile_routes(
    table: list[tuple[str, str, Callable[[Any], Reply]]], param_patterns: Mapping[str, str]
) -> list[Route]:
    """Routes whose `{name}` placeholders match `param_patterns[name]` (default: one segment)."""
    routes: list[Route] = []
    for method, template, handler in table:
        pattern = re.escape(template)
        for name in re.findall(r"\{(\w+)\}", template):
            part = param_patterns.get(name, r"[^/]+")
            pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>{part})")
        routes.append(Route(method, template, re.compile(f"^{pattern}$"), handler))
    return routes


class EmulatedService:
    """Serving, routing, counting, faults and contract bookkeeping for one emulator."""

    thread_name = "emulator"
    server_header = "Emulator"

    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        self.delay = 0.0
        self.counts: Counter[str] = Counter()
        self.requests: list[RecordedRequest] = []
        self.contract_errors: list[str] = []
        self.request_errors: list[str] = []  # client bodies that break the request schema
        self.undocumented: list[str] = []  # "METHOD template status" sent but not in the spec
        self.faults: list[Fault] = []
        self.slowdowns: list[Slowdown] = []
        self.routes: list[Route] = []
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._origin: str | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------------------- lifecycle
    def start(self) -> Self:
        self._serve()
        return self

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        service = self

        class _Handler(_HTTPHandler):
            owner = service
            server_version = service.server_header

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._origin = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=self.thread_name,
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    @property
    def serving(self) -> bool:
        return self._server is not None

    @property
    def origin(self) -> str:
        assert self._origin is not None, "start() the emulator first"
        return self._origin

    @property
    def templates(self) -> list[tuple[str, str]]:
        return [(route.method, route.template) for route in self.routes]

    def reset_counts(self) -> None:
        with self._lock:
            self.counts.clear()
            self.requests.clear()

    # ----------------------------------------------------------------------------- routing
    def route(
        self, method: str, path: str
    ) -> tuple[str | None, Callable[[Any], Reply] | None, dict[str, str], bool]:
        """(template, handler, path parameters, whether any method serves this path)."""
        path_known = False
        for route in self.routes:
            match = route.pattern.match(path)
            if match:
                path_known = True
                if route.method == method:
                    return route.template, route.handler, match.groupdict(), True
        return None, None, {}, path_known

    def count(self, method: str, template: str | None, path: str) -> None:
        with self._lock:
            self.counts[f"{method} {template or path}"] += 1

    def record(
        self,
        method: str,
        path: str,
        template: str | None,
        status: int,
        arrived: float | None = None,
    ) -> None:
        now = time.time()
        with self._lock:
            self.requests.append(
                RecordedRequest(method, path, template, status, arrived or now, now)
            )

    # ----------------------------------------------------------------------------- faults
    def add_fault(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def slow_next(
        self, n: int, seconds: float, *, method: str | None = None, path: str | None = None
    ) -> None:
        """Delay the next n matching requests by `seconds` (on top of `delay`)."""
        with self._lock:
            self.slowdowns.append(Slowdown(n, seconds, method, path))

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()
            self.slowdowns.clear()

    def take_fault(self, method: str, path: str, template: str | None) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.remaining > 0 and fault.matches(method, path, template):
                    fault.remaining -= 1
                    return fault
            return None

    def pause(self, method: str, path: str, template: str | None) -> None:
        """Sleep for `delay` plus the first matching slowdown (which is used up)."""
        seconds = self.delay
        with self._lock:
            for slow in self.slowdowns:
                if slow.remaining > 0 and slow.matches(method, path, template):
                    slow.remaining -= 1
                    seconds += slow.seconds
                    break
        if seconds > 0:
            time.sleep(seconds)

    # ----------------------------------------------------------------------------- contract
    def check_request_body(self, method: str, template: str | None, body: Json) -> None:
        if template is None:
            return
        problems = self.contract.check_request(method, template, body)
        with self._lock:
            self.request_errors += [f"{method} {template}: {p}" for p in problems]

    def check_contract(self, method: str, template: str | None, path: str, reply: Reply) -> None:
        if template is None:
            with self._lock:
                self.contract_errors.append(f"{method} {path}: no route in the OpenAPI subset")
            return
        result = self.contract.check(method, template, reply.status, reply.body)
        with self._lock:
            if not result.documented:
                self.undocumented.append(f"{method} {template} {reply.status}")
            self.contract_errors += [
                f"{method} {template} {reply.status}: {error}" for error in result.errors
            ]

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], raw_body: bytes
    ) -> tuple[Reply, str | None]:
        raise NotImplementedError


class _HTTPHandler(BaseHTTPRequestHandler):
    owner: EmulatedService
    protocol_version = "HTTP/1.1"
    sys_version = ""
    timeout = 30
    disable_nagle_algorithm = True  # headers and body are two writes: avoid 40 ms delayed ACKs

    def _serve(self) -> None:
        if not self.owner.serving:  # stopped: a kept-alive connection gets no more answers
            self.close_connection = True
            return
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply, _ = self.owner.handle(self.command, self.path, headers, raw)
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(payload)))
        try:
            self.end_headers()
            if payload and self.command != "HEAD":
                self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            self.close_connection = True

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        return


__all__ = [
    "EmulatedService",
    "Fault",
    "RecordedRequest",
    "Reply",
    "Route",
    "Slowdown",
    "compile_routes",
]
