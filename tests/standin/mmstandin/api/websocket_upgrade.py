"""The websocket route: checks the handshake, then hands the connection to mmstandin.websocket."""

from __future__ import annotations

from .. import store, websocket
from .errors import AppError
from .request import Request
from .responses import Response
from .settings import setting


def connect_websocket(req: Request) -> Response:
    try:
        accept = websocket.check_handshake(req.headers)
    except websocket.HandshakeError as exc:
        raise AppError(
            400,
            "api.web_socket.connect.upgrade.app_error",
            "Failed to upgrade websocket connection.",
            str(exc),
            headers=[("Sec-WebSocket-Version", websocket.SUPPORTED_VERSION)],
        ) from exc
    if not websocket.origin_allowed(
        req.headers, str(setting(req.app, "ServiceSettings", "AllowCorsFrom", ""))
    ):
        raise AppError(
            403,
            "api.web_socket.connect.upgrade.app_error",
            "Failed to upgrade websocket connection.",
            "request origin not allowed",
        )
    session = req.session
    user_id = session["user_id"] if session else None
    server, handler = req.server, req.handler
    version = handler.version_header()

    def authenticate(token: str) -> str | None:
        found = store.get_session(server.app.db, token)
        return found["user_id"] if found else None

    def run() -> None:
        websocket.serve(
            handler.connection,
            handler.rfile,
            server_version=version,
            authenticate=authenticate,
            hub=server.hub,
            stopping=server.stopping,
            user_id=user_id,
            logger=server.logger,
        )

    headers = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept)]
    return Response(101, headers=headers, upgrade=run)
