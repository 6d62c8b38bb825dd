"""The HTTP/1.1 layer: a threading server per App, and a handler that turns requests into responses."""

from __future__ import annotations

import http.server
import logging
import shutil
import socket
import socketserver
import threading
from typing import Any

from .. import store, websocket
from .errors import AppError
from .request import Request
from .responses import Response
from .routing import Router


class Handler(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive; every response has X-Version-Id, X-Request-Id and Content-Length."""

    protocol_version = "HTTP/1.1"
    # Idle keep-alive connections and stalled uploads give up after this many seconds.
    timeout = 300
    server: StandinServer

    def version_header(self) -> str:
        try:
            return str(self.server.app.version_header())
        except Exception:  # a header must never turn a request into a 500
            build = getattr(self.server.app, "build", None) or {}
            return f"{build.get('version', '')}.{build.get('build_number', '')}..false"

    def send_response(self, code: int, message: str | None = None) -> None:
        # The real server (Go net/http) sends no Server header.
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def log_message(self, format: str, *args: Any) -> None:
        self.server.logger.debug("%s - %s", self.address_string(), format % args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level errors (bad request line, header too long) as AppError JSON too."""
        self.close_connection = True
        request_id = store.new_id()
        error = AppError(code, "api.context.http_error.app_error", message or "Bad request.", explain or "")
        self._write(error.response(request_id), request_id)

    def _dispatch(self) -> None:
        request_id = store.new_id()
        req = None
        try:
            req = Request(self, request_id)
            response = self.server.router.dispatch(req)
        except AppError as error:
            response = error.response(request_id)
        except Exception as exc:
            self.server.logger.exception("request %s %s failed", self.command, self.path)
            error = AppError(
                500, "api.context.unexpected.app_error", "An unexpected error occurred.", type(exc).__name__
            )
            response = error.response(request_id)
        if response.upgrade is not None:
            self._write(response, request_id)
            self.close_connection = True
            try:
                response.upgrade()
            except Exception:
                self.server.logger.exception("websocket connection failed")
            return
        try:
            if req is not None and req.body_pending:
                # The body was not read (early error): the next request on this connection would be garbage.
                self.close_connection = True
        except AppError:
            self.close_connection = True
        self._write(response, request_id)

    def _write(self, response: Response, request_id: str) -> None:
        self.send_response(response.status)
        self.send_header("X-Request-Id", request_id)
        self.send_header("X-Version-Id", self.version_header())
        if response.status == 101:
            for name, value in response.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.flush()
            return
        self.send_header("Content-Type", response.content_type)
        for name, value in response.headers:
            self.send_header(name, value)
        length = response.file_path.stat().st_size if response.file_path else len(response.body)
        self.send_header("Content-Length", str(length))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        if response.file_path:
            with response.file_path.open("rb") as source:
                shutil.copyfileobj(source, self.wfile, 1024 * 1024)
        else:
            self.wfile.write(response.body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _dispatch


class StandinServer(http.server.ThreadingHTTPServer):
    """The API server of one App and its router; `stopping` tells open websockets to close on shutdown."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: Any, router: Router) -> None:
        self.app = app
        self.router = router
        self.logger: logging.Logger = getattr(app, "logger", None) or logging.getLogger("mmstandin.api")
        self.hub = websocket.Hub()
        self.stopping = threading.Event()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (a DNS lookup); the stand-in never needs it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def shutdown(self) -> None:
        self.stopping.set()
        super().shutdown()

    def server_close(self) -> None:
        self.stopping.set()
        super().server_close()
