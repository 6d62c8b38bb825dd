"""System routes: the health check (ping) and the client config that shows the build."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from .. import store
from .request import Request
from .responses import Response, json_response
from .settings import setting, setting_bool


def _database_ok(app: Any) -> bool:
    try:
        return bool(app.db.ping())
    except Exception:  # a broken connection must read as UNHEALTHY, never as a 500 traceback
        return False


def _filestore_ok(app: Any) -> bool:
    """Like the real file backend's TestConnection: the data directory must take a new file."""
    try:
        data_dir = Path(app.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".testfile-"):
            pass
    except OSError:
        return False
    return True


def get_system_ping(req: Request) -> Response:
    body = {
        "status": "OK",
        "ActiveSearchBackend": "database",
        "AndroidLatestVersion": "",
        "AndroidMinVersion": "",
        "IosLatestVersion": "",
        "IosMinVersion": "",
    }
    healthy = bool(getattr(req.app, "healthy", True))
    database_ok = _database_ok(req.app)
    headers = []
    if req.query.get("get_server_status", "").lower() == "true":
        filestore_ok = _filestore_ok(req.app)
        body["database_status"] = "OK" if database_ok else "UNHEALTHY"
        body["filestore_status"] = "OK" if filestore_ok else "UNHEALTHY"
        headers = [
            ("database_status", body["database_status"]),
            ("filestore_status", body["filestore_status"]),
        ]
        healthy = healthy and filestore_ok
    if not (healthy and database_ok):
        body["status"] = "UNHEALTHY"
        if req.query.get("use_rest_semantics", "").lower() != "true":
            return json_response(body, 500, headers)
    return json_response(body, 200, headers)


def get_client_config(req: Request) -> Response:
    build = getattr(req.app, "build", None) or {}
    enterprise = bool(build.get("enterprise"))
    config = {
        "Version": str(build.get("version", "")),
        "BuildNumber": str(build.get("build_number", "")),
        "BuildDate": str(build.get("build_date", "")),
        "BuildHash": str(build.get("build_hash", "")),
        "BuildHashEnterprise": str(
            build.get("build_hash_enterprise") or (build.get("build_hash", "") if enterprise else "none")
        ),
        "BuildEnterpriseReady": "true" if enterprise else "false",
        "SiteURL": str(setting(req.app, "ServiceSettings", "SiteURL", "")),
        "SiteName": str(setting(req.app, "TeamSettings", "SiteName", "Mattermost")),
        "DiagnosticsEnabled": "true"
        if setting_bool(req.app, "LogSettings", "EnableDiagnostics", True)
        else "false",
        "EnableSignUpWithEmail": "true",
        "EnableSignInWithEmail": "true",
        "EnableSignInWithUsername": "true",
    }
    try:
        config["NoAccounts"] = "true" if store.count_users(req.db) == 0 else "false"
    except Exception:  # the client config must answer even while the database is away
        req.server.logger.debug("client config without NoAccounts: database unavailable")
    return json_response(config)
