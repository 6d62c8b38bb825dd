"""`mattermost` / `mattermost server`: the startup sequence, the HTTP server's lifetime, a clean stop.

The order follows the real server: read the configuration, set up logging, validate the configuration,
connect to the database (waiting for it), refuse an unsupported PostgreSQL or a newer schema, migrate,
install prepackaged plugins, listen, then tell systemd READY=1. SIGTERM or SIGINT stop it with exit 0.
The failure modes baked in by the release builder ("failure" in build.json) hook into this sequence.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import api, config, db, logs, notify, plugins
from . import build as build_info

INSTALL_DIR_ENV = "MM_STANDIN_INSTALL_DIR"  # for `python3 -m mmstandin` runs, where argv[0] is no binary
DB_WAIT_ENV = "MM_STANDIN_DB_WAIT_SECONDS"  # lets tests shorten the ~30 s wait for an absent database
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

log = logs.get_logger("server")


class StartupError(Exception):
    """An expected reason not to start; logged as an error, exit status 1."""


class App:
    """What the HTTP API needs from the running server (docs/dev/standin-contract.md)."""

    def __init__(
        self,
        build: dict,
        config: dict[str, Any],
        db: db.Database,
        install_dir: Path,
        data_dir: Path,
        *,
        healthy: bool = True,
    ) -> None:
        self.build = build
        self.config = config
        self.db = db
        self.install_dir = install_dir
        self.data_dir = data_dir
        self.healthy = healthy
        self.client_config_hash = client_config_hash(build, config)

    def version_header(self) -> str:
        """X-Version-Id: "<version>.<build number>.<client config hash>.<licensed>" (no license here)."""
        return f"{self.build['version']}.{self.build['build_number']}.{self.client_config_hash}.false"


def client_config_hash(build: dict, settings: Mapping[str, Any]) -> str:
    """md5 of the config the web app sees, as the real server's ClientConfigHash: it changes with it."""
    client_config = {
        "Version": build["version"],
        "BuildNumber": build["build_number"],
        "BuildDate": build["build_date"],
        "BuildHash": build["build_hash"],
        "BuildEnterpriseReady": "true" if build["enterprise"] else "false",
        "SiteURL": settings.get("ServiceSettings", {}).get("SiteURL", ""),
        "SiteName": settings.get("TeamSettings", {}).get("SiteName", ""),
        "EnableOpenServer": settings.get("TeamSettings", {}).get("EnableOpenServer", False),
    }
    encoded = json.dumps(client_config, sort_keys=True).encode("utf-8")
    return hashlib.md5(encoded, usedforsecurity=False).hexdigest()


def parse_listen_address(address: str) -> tuple[str, int]:
    """ServiceSettings.ListenAddress as (host, port); ":8065" means every interface (host "")."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise StartupError(f"invalid ServiceSettings.ListenAddress {address!r}; expected host:port or :port")
    return host.strip("[]"), int(port_text)


def locate_install_dir(env: Mapping[str, str], argv0: str | None = None) -> Path:
    """The directory holding bin/, config/, prepackaged_plugins/: the parent of the binary's directory."""
    if env.get(INSTALL_DIR_ENV):
        return Path(env[INSTALL_DIR_ENV]).resolve()
    return Path(argv0 if argv0 is not None else sys.argv[0]).resolve().parent.parent


def find_dir(name: str, install_dir: Path) -> Path:
    """Like the real fileutils.FindDir: the working directory first, then next to the binary."""
    local = Path.cwd() / name
    if local.is_dir():
        return local
    beside_binary = install_dir / name
    if beside_binary.is_dir():
        return beside_binary
    return local


def resolve(path_setting: str) -> Path:
    """Relative settings (./data/, ./plugins) are relative to the working directory, as in the real server."""
    return Path.cwd() / path_setting


def configuration_problem(build: dict, settings: Mapping[str, Any]) -> str | None:
    """Settings this release refuses to start with (v11.0 breaking changes, facts section 8)."""
    v11_or_later = build_info.version_tuple(str(build["version"]))[0] >= 11
    driver = settings["SqlSettings"].get("DriverName")
    if driver != "postgres":
        if v11_or_later:
            return f"SqlSettings.DriverName {driver!r} is not supported: support for MySQL has ended in v11.0"
        return f"SqlSettings.DriverName {driver!r} is not supported by the stand-in; use postgres"
    if not v11_or_later:
        return None
    if settings["TeamSettings"].get("ExperimentalViewArchivedChannels") is False:
        return (
            "TeamSettings.ExperimentalViewArchivedChannels=false is no longer supported: archived channels "
            "are always viewable since v11.0; set it to true to start the server"
        )
    if settings["ExperimentalSettings"].get("ClientSideCertEnable") is True:
        return (
            "ExperimentalSettings.ClientSideCertEnable=true is no longer supported since v11.0; "
            "set it to false to start the server"
        )
    return None


def db_wait_seconds(env: Mapping[str, str]) -> float:
    try:
        return float(env.get(DB_WAIT_ENV, db.CONNECT_WAIT_SECONDS))
    except ValueError:
        return db.CONNECT_WAIT_SECONDS


def _install_stop_handlers(stop: threading.Event) -> dict[int, Any]:
    # The handler only sets the event: logging or I/O inside a signal handler can deadlock.
    previous = {}
    for signum in STOP_SIGNALS:
        previous[signum] = signal.signal(signum, lambda _signum, _frame: stop.set())
    return previous


def _restore_handlers(previous: Mapping[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def run(config_flag: str | None, env: Mapping[str, str] | None = None) -> int:
    """Run the server until SIGTERM/SIGINT; 0 after a clean stop, 1 when it could not start."""
    environment = os.environ if env is None else env
    try:
        build = build_info.load()
    except build_info.BuildInfoError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    previous_handlers = _install_stop_handlers(stop)
    lifetime = ServerLifetime(build, locate_install_dir(environment), environment, stop)
    try:
        return lifetime.run(config_flag)
    finally:
        lifetime.close()
        _restore_handlers(previous_handlers)
        logs.shutdown()


class ServerLifetime:
    """One server run: everything opened during startup is closed again by close()."""

    def __init__(self, build: dict, install_dir: Path, env: Mapping[str, str], stop: threading.Event) -> None:
        self.build = build
        self.install_dir = install_dir
        self.env = env
        self.stop = stop
        self.database: db.Database | None = None
        self.http_server: Any = None
        self.serve_thread: threading.Thread | None = None
        self.listening = False

    def run(self, config_flag: str | None) -> int:
        source = config.choose_source(config_flag, self.env)
        if source.in_database:
            logs.redact_data_source(source.location)
        try:
            loaded = config.load(
                source, self.env, self.install_dir, persist=True, open_database=self._open_config_database
            )
        except (config.ConfigError, db.DatabaseError) as exc:
            # Logging is configured by the configuration, so this one goes to stderr like cobra's errors.
            print(f"Error: failed to load configuration: {exc}", file=sys.stderr)
            return 1
        settings = loaded.effective
        logs.redact_data_source(settings["SqlSettings"]["DataSource"])
        logs.setup(settings["LogSettings"], find_dir("logs", self.install_dir))
        try:
            return self._start_and_serve(loaded)
        except (StartupError, db.DatabaseError) as exc:
            log.error(str(exc))
            return 1

    def _open_config_database(self, dsn: str) -> db.Database:
        database = db.Database(dsn)
        if not db.wait_for_database(database, db_wait_seconds(self.env), stop=self.stop):
            raise config.ConfigError("stopped while waiting for the configuration database")
        return database

    def _start_and_serve(self, loaded: config.LoadedConfig) -> int:
        build, settings = self.build, loaded.effective
        log.info(
            "Server is initializing...",
            extra={"fields": {"version": build["version"], "build_number": build["build_number"]}},
        )
        log.info(
            f"Current version is {build['version']} ({build['build_number']}/{build['build_date']}/"
            f"{build['build_hash']}/{'true' if build['enterprise'] else 'false'})",
        )
        self._log_config(loaded)
        problem = configuration_problem(build, settings)
        if problem is not None:
            raise StartupError(f"failed to load configuration: {problem}")
        if build["failure"] == "exit-on-start":
            raise StartupError("stand-in failure mode exit-on-start: the server exits before listening")

        data_dir = resolve(settings["FileSettings"]["Directory"])
        plugins_dir = resolve(settings["PluginSettings"]["Directory"])
        self._make_directories(settings, data_dir, plugins_dir)

        self.database = db.Database(settings["SqlSettings"]["DataSource"])
        if not self._migrate(self.database):
            return 0

        plugin_settings = settings["PluginSettings"]
        if plugin_settings["Enable"] and plugin_settings["AutomaticPrepackagedPlugins"]:
            plugins.install_prepackaged(find_dir("prepackaged_plugins", self.install_dir), plugins_dir)

        if build["failure"] == "slow-start":
            seconds = float(build["slow_start_seconds"])
            log.info(
                "stand-in failure mode slow-start: delaying startup", extra={"fields": {"seconds": seconds}}
            )
            if self.stop.wait(seconds):
                return 0

        app = App(
            build,
            settings,
            self.database,
            self.install_dir,
            data_dir,
            healthy=build["failure"] != "unhealthy",
        )
        self._listen(app, settings["ServiceSettings"]["ListenAddress"])
        self._notify(notify.READY, "Sending systemd READY notification.")
        # Short waits keep the main thread returning to the interpreter, where signal handlers run.
        while not self.stop.wait(1.0):
            pass
        log.info("Stopping Server...")
        self._notify(notify.STOPPING, "Sending systemd STOPPING notification.")
        return 0

    def _log_config(self, loaded: config.LoadedConfig) -> None:
        if loaded.path is None:
            where = db.mask_data_source(loaded.source.location)
        else:
            where = str(loaded.path.absolute())
        log.info("Loaded configuration", extra={"fields": {"source": where}})
        if loaded.created:
            log.info("Created the configuration from defaults", extra={"fields": {"source": where}})
        if loaded.added_keys:
            log.info(
                "Added missing default settings to the configuration",
                extra={"fields": {"source": where, "settings": loaded.added_keys}},
            )
        if loaded.overridden:
            log.info(
                "Settings overridden by environment variables",
                extra={"fields": {"settings": loaded.overridden}},
            )
        for name in loaded.rejected_env:
            log.warning(
                "Ignoring environment variable with an invalid value", extra={"fields": {"name": name}}
            )

    def _make_directories(self, settings: Mapping[str, Any], data_dir: Path, plugins_dir: Path) -> None:
        wanted = [plugins_dir, resolve(settings["PluginSettings"]["ClientDirectory"])]
        if settings["FileSettings"]["DriverName"] == "local":
            wanted.insert(0, data_dir)
        for directory in wanted:
            try:
                directory.mkdir(mode=0o750, parents=True, exist_ok=True)
            except OSError as exc:
                raise StartupError(f"failed to create directory {directory}: {exc.strerror or exc}") from None

    def _migrate(self, database: db.Database) -> bool:
        """Connect (waiting), check PostgreSQL and schema, migrate; False when stopped while waiting."""
        log.info("Pinging SQL", extra={"fields": {"database": "master", "dataSource": database.masked_dsn}})
        waited = db.wait_for_database(
            database, db_wait_seconds(self.env), on_retry=log.warning, stop=self.stop
        )
        if not waited:
            return False
        db.check_postgres_version(database, str(self.build["version"]))
        before, after = db.migrate(database, self.build)
        if after != before:
            log.info("Migrated the database schema", extra={"fields": {"from": before, "to": after}})
        return True

    def _listen(self, app: App, listen_address: str) -> None:
        host, port = parse_listen_address(listen_address)
        log.info("Starting Server...")
        try:
            self.http_server = api.serve(app, host, port)
        except OSError as exc:
            raise StartupError(
                f"Error starting server, err:listen tcp {listen_address}: bind: {exc.strerror or exc}"
            ) from None
        bound_host, bound_port = self.http_server.server_address[:2]
        self.serve_thread = threading.Thread(
            target=self.http_server.serve_forever, name="http-server", daemon=True
        )
        self.serve_thread.start()
        self.listening = True
        shown_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        log.info(
            f"Server is listening on {shown_host}:{bound_port}",
            extra={"fields": {"address": f"{shown_host}:{bound_port}"}},
        )

    def _notify(self, state: str, message: str) -> None:
        if not self.env.get("NOTIFY_SOCKET"):
            return
        log.info(message)
        try:
            notify.notify(state, self.env)
        except notify.NotifyError as exc:
            log.error(str(exc))

    def close(self) -> None:
        if self.http_server is not None:
            self.http_server.shutdown()
            self.http_server.server_close()
            self.http_server = None
        if self.serve_thread is not None:
            self.serve_thread.join(timeout=5)
            self.serve_thread = None
        if self.database is not None:
            self.database.close()
            self.database = None
        if self.listening:
            log.info("Server stopped")
            self.listening = False
