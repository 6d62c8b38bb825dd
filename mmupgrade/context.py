"""What every step of a run shares: the options, the output, the service, the journal, the secrets."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .database import Database, DatabaseError, DataSource
from .errors import Refused
from .health import DEFAULT_TIMEOUT
from .installation import Installation, discover
from .journal import Journal
from .output import Reporter
from .progress import Progress
from .releases import DEFAULT_RELEASE_URL, DEFAULT_RELEASES_API
from .service import ServiceController, SystemdService
from .unit import UNIT_DIRS

DEFAULT_STATE_DIR = Path("/var/lib/mmupgrade")
DEFAULT_BACKUP_DIR = Path("/var/backups/mattermost")
DEFAULT_KEEP_BACKUPS = 3
# Names of unit environment variables whose whole value is a credential.
_SECRET_HINTS = ("PASSWORD", "SECRET")


@dataclass
class Options:
    action: str = "upgrade"  # upgrade | check | rollback
    to: str | None = None  # X.Y.Z; None with --latest
    install_dir: Path | None = None
    unit: str = "mattermost"
    release_url: str = DEFAULT_RELEASE_URL
    releases_api: str = DEFAULT_RELEASES_API
    signing_key: Path | None = None
    signing_key_fingerprint: str | None = None
    sha256: str | None = None
    tarball: Path | None = None
    edition: str = "auto"
    backup_dir: Path = DEFAULT_BACKUP_DIR
    backup_data: bool = False
    keep_backups: int = DEFAULT_KEEP_BACKUPS
    dry_run: bool = False
    yes: bool = False
    health_timeout: float = DEFAULT_TIMEOUT
    state_dir: Path = DEFAULT_STATE_DIR


@dataclass
class Runtime:
    """How mmupgrade reaches the host; tests replace the service and the unit directories."""

    reporter: Reporter = field(default_factory=Reporter)
    service: ServiceController | None = None
    unit_dirs: Sequence[Path] = UNIT_DIRS
    use_systemctl: bool | None = None
    require_root: bool = True
    arch: str | None = None


class Context:
    def __init__(self, options: Options, runtime: Runtime) -> None:
        self.options = options
        self.runtime = runtime
        self.reporter = runtime.reporter
        self.service: ServiceController = runtime.service or SystemdService(options.unit)
        self.journal = Journal(options.state_dir, redact=self.reporter.redact)
        # The versions this run is about, once known: every result names them, refusals included.
        self.from_version: object = None
        self.to_version: object = None

    def say(self, message: str) -> None:
        self.reporter.info(message)

    def progress(self, label: str, total: int) -> Progress:
        return self.reporter.progress(label, total)

    def check_root(self) -> None:
        if self.runtime.require_root and os.geteuid() != 0:
            raise Refused(
                "mmupgrade must run as root (it stops the service and replaces files owned by root): use sudo"
            )

    def discover(self, install_dir: Path | None = None) -> Installation:
        installation = discover(
            install_dir or self.options.install_dir,
            self.options.unit,
            self.runtime.unit_dirs,
            self.runtime.use_systemctl,
            read_database_config=self._read_database_config,
        )
        self._register_secrets(installation.env)
        self.reporter.secrets.add_data_source(installation.settings.data_source)
        return installation

    def _register_secrets(self, env: dict[str, Any]) -> None:
        """Every credential the unit's environment carries: data sources (replicas too) and passwords."""
        for name, value in env.items():
            if not isinstance(value, str):
                continue
            for word in value.split():
                if word.startswith(("postgres://", "postgresql://")) or "password=" in word:
                    self.reporter.secrets.add_data_source(word)
            if "password=" in value:
                self.reporter.secrets.add_data_source(value)  # libpq key=value form
            if any(hint in name.upper() for hint in _SECRET_HINTS):
                self.reporter.secrets.add_password(value)

    def _read_database_config(self, dsn: str) -> dict | None:
        self.reporter.secrets.add_data_source(dsn)
        try:
            return Database(DataSource.parse(dsn)).active_config()
        except DatabaseError as exc:
            raise Refused(f"cannot read the configuration stored in the database: {exc}") from None

    def database(self, installation: Installation) -> Database:
        if installation.settings.driver != "postgres":
            raise Refused(
                f"SqlSettings.DriverName is {installation.settings.driver!r}: mmupgrade supports "
                "PostgreSQL only "
                "(MySQL support ended in Mattermost v11)"
            )
        try:
            return Database(DataSource.parse(installation.settings.data_source))
        except DatabaseError as exc:
            raise Refused(str(exc)) from None

    def config_database(self, installation: Installation) -> Database | None:
        """The database holding the configuration, when it is not the data database."""
        dsn = installation.settings.config_database
        if not dsn:
            return None
        source = DataSource.parse(dsn)
        data = DataSource.parse(installation.settings.data_source)
        return None if source.same_database(data) else Database(source)
