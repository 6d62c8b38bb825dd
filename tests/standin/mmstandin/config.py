"""The server's effective configuration: defaults, a config file or the database, and MM_* overrides.

Where the configuration comes from, as with the real server: `--config X`, else $MM_CONFIG, else
config/config.json. X is a file path or a postgres:// URL (the configuration then lives in the
`Configurations` table). Environment variables `MM_<SECTION>_<KEY>` win over what is stored and are
never written back. On start the server adds missing default keys to a writable config file, leaving
every existing value, unknown key, file mode and owner as they were.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import pgwire, store
from .db import Database

DEFAULT_CONFIG_PATH = "config/config.json"
DEFAULT_DATA_SOURCE = "postgres://mmuser:mostest@localhost/mattermost_test?sslmode=disable&connect_timeout=10&binary_parameters=yes"
ENV_PREFIX = "MM_"
# Go's strconv.ParseBool, which the real server uses for boolean environment overrides.
TRUE_WORDS = frozenset({"1", "t", "true"})
FALSE_WORDS = frozenset({"0", "f", "false"})

# A subset of the real config.json, with the values a release build ships (SiteURL and e-mail blanked,
# console level INFO). Key names and types match the real ones so MM_* overrides behave the same.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "ServiceSettings": {
        "SiteURL": "",
        "WebsocketURL": "",
        "LicenseFileLocation": "",
        "ListenAddress": ":8065",
        "ConnectionSecurity": "",
        "TLSCertFile": "",
        "TLSKeyFile": "",
        "TLSMinVer": "1.2",
        "TrustedProxyIPHeader": [],
        "UseLetsEncrypt": False,
        "Forward80To443": False,
        "ReadTimeout": 300,
        "WriteTimeout": 300,
        "IdleTimeout": 60,
        "MaximumLoginAttempts": 10,
        "GoroutineHealthThreshold": -1,
        "EnableOAuthServiceProvider": True,
        "EnableIncomingWebhooks": True,
        "EnableOutgoingWebhooks": True,
        "EnableCommands": True,
        "EnablePostUsernameOverride": False,
        "EnablePostIconOverride": False,
        "EnableLinkPreviews": True,
        "EnableTesting": False,
        "EnableDeveloper": False,
        "EnableSecurityFixAlert": True,
        "EnableInsecureOutgoingConnections": False,
        "AllowedUntrustedInternalConnections": "",
        "EnableMultifactorAuthentication": False,
        "EnforceMultifactorAuthentication": False,
        "EnableUserAccessTokens": False,
        "AllowCorsFrom": "",
        "SessionLengthWebInHours": 720,
        "SessionLengthMobileInHours": 720,
        "SessionLengthSSOInHours": 720,
        "SessionCacheInMinutes": 10,
        "WebserverMode": "gzip",
        "EnableCustomEmoji": True,
        "EnableLocalMode": False,
        "EnableAPITeamDeletion": False,
        "ExtendSessionLengthWithActivity": True,
        "CollapsedThreads": "always_on",
    },
    "TeamSettings": {
        "SiteName": "Mattermost",
        "MaxUsersPerTeam": 50,
        "EnableUserCreation": True,
        "EnableOpenServer": False,
        "EnableUserDeactivation": False,
        "RestrictCreationToDomains": "",
        "EnableCustomUserStatuses": True,
        "EnableCustomBrand": False,
        "CustomBrandText": "",
        "CustomDescriptionText": "",
        "RestrictDirectMessage": "any",
        "EnableLastActiveTime": True,
        "MaxChannelsPerTeam": 2000,
        "MaxNotificationsPerChannel": 1000,
        "EnableConfirmNotificationsToChannel": True,
        "TeammateNameDisplay": "username",
        "ExperimentalViewArchivedChannels": True,
        "LockTeammateNameDisplay": False,
        "ExperimentalPrimaryTeam": "",
        "ExperimentalDefaultChannels": [],
    },
    "SqlSettings": {
        "DriverName": "postgres",
        "DataSource": DEFAULT_DATA_SOURCE,
        "DataSourceReplicas": [],
        "DataSourceSearchReplicas": [],
        "MaxIdleConns": 50,
        "ConnMaxLifetimeMilliseconds": 3600000,
        "ConnMaxIdleTimeMilliseconds": 300000,
        "MaxOpenConns": 100,
        "Trace": False,
        "AtRestEncryptKey": "",
        "QueryTimeout": 30,
        "DisableDatabaseSearch": False,
        "MigrationsStatementTimeoutSeconds": 100000,
        "ReplicaMonitorIntervalSeconds": 5,
    },
    "LogSettings": {
        "EnableConsole": True,
        "ConsoleLevel": "INFO",
        "ConsoleJson": True,
        "EnableColor": False,
        "EnableFile": True,
        "FileLevel": "INFO",
        "FileJson": True,
        "FileLocation": "",
        "EnableWebhookDebugging": True,
        "EnableDiagnostics": True,
        "VerboseDiagnostics": False,
        "EnableSentry": True,
        "AdvancedLoggingJSON": {},
        "MaxFieldSize": 2048,
    },
    "PasswordSettings": {
        "MinimumLength": 8,
        "Lowercase": False,
        "Number": False,
        "Uppercase": False,
        "Symbol": False,
        "EnableForgotLink": True,
    },
    "FileSettings": {
        "EnableFileAttachments": True,
        "EnableMobileUpload": True,
        "EnableMobileDownload": True,
        "MaxFileSize": 104857600,
        "MaxImageResolution": 33177600,
        "MaxImageDecoderConcurrency": -1,
        "DriverName": "local",
        "Directory": "./data/",
        "EnablePublicLink": False,
        "ExtractContent": True,
        "ArchiveRecursion": False,
        "PublicLinkSalt": "",
        "InitialFont": "nunito-bold.ttf",
        "AmazonS3AccessKeyId": "",
        "AmazonS3SecretAccessKey": "",
        "AmazonS3Bucket": "",
        "AmazonS3PathPrefix": "",
        "AmazonS3Region": "",
        "AmazonS3Endpoint": "s3.amazonaws.com",
        "AmazonS3SSL": True,
        "AmazonS3SignV2": False,
        "AmazonS3SSE": False,
        "AmazonS3Trace": False,
    },
    "EmailSettings": {
        "EnableSignUpWithEmail": True,
        "EnableSignInWithEmail": True,
        "EnableSignInWithUsername": True,
        "SendEmailNotifications": True,
        "UseChannelInEmailNotifications": False,
        "RequireEmailVerification": False,
        "FeedbackName": "",
        "FeedbackEmail": "",
        "ReplyToAddress": "",
        "FeedbackOrganization": "",
        "EnableSMTPAuth": False,
        "SMTPUsername": "",
        "SMTPPassword": "",
        "SMTPServer": "",
        "SMTPPort": "",
        "SMTPServerTimeout": 10,
        "ConnectionSecurity": "",
        "SendPushNotifications": True,
        "PushNotificationServer": "https://push-test.mattermost.com",
        "PushNotificationContents": "full",
        "EnableEmailBatching": False,
        "SkipServerCertificateVerification": False,
    },
    "RateLimitSettings": {
        "Enable": False,
        "PerSec": 10,
        "MaxBurst": 100,
        "MemoryStoreSize": 10000,
        "VaryByRemoteAddr": True,
        "VaryByUser": False,
        "VaryByHeader": "",
    },
    "PrivacySettings": {"ShowEmailAddress": True, "ShowFullName": True},
    "SupportSettings": {
        "TermsOfServiceLink": "https://mattermost.com/pl/terms-of-use/",
        "PrivacyPolicyLink": "https://mattermost.com/pl/privacy-policy/",
        "AboutLink": "https://mattermost.com/pl/about-mattermost",
        "HelpLink": "https://mattermost.com/pl/help/",
        "ReportAProblemLink": "https://mattermost.com/pl/report-a-bug",
        "SupportEmail": "",
    },
    "LocalizationSettings": {
        "DefaultServerLocale": "en",
        "DefaultClientLocale": "en",
        "AvailableLocales": "",
    },
    "MetricsSettings": {"Enable": False, "BlockProfileRate": 0, "ListenAddress": ":8067"},
    "ClusterSettings": {
        "Enable": False,
        "ClusterName": "",
        "OverrideHostname": "",
        "NetworkInterface": "",
        "BindAddress": "",
        "AdvertiseAddress": "",
        "UseIPAddress": True,
        "EnableGossipCompression": True,
        "EnableExperimentalGossipEncryption": False,
        "ReadOnlyConfig": True,
        "GossipPort": 8074,
    },
    "ExperimentalSettings": {
        "ClientSideCertEnable": False,
        "ClientSideCertCheck": "secondary",
        "LinkMetadataTimeoutMilliseconds": 5000,
        "RestrictSystemAdmin": False,
        "EnableSharedChannels": False,
        "EnableRemoteClusterService": False,
    },
    "PluginSettings": {
        "Enable": True,
        "EnableUploads": False,
        "AllowInsecureDownloadURL": False,
        "EnableHealthCheck": True,
        "Directory": "./plugins",
        "ClientDirectory": "./client/plugins",
        "Plugins": {},
        "PluginStates": {},
        "EnableMarketplace": True,
        "EnableRemoteMarketplace": True,
        "AutomaticPrepackagedPlugins": True,
        "RequirePluginSignature": False,
        "MarketplaceURL": "https://api.integrations.mattermost.com",
        "SignaturePublicKeyFiles": [],
    },
    "ImportSettings": {"Directory": "./import", "RetentionDays": 30},
    "ExportSettings": {"Directory": "./export", "RetentionDays": 30},
}


class ConfigError(Exception):
    """The configuration cannot be read or is unusable; the message names the source, never a password."""


def default_config() -> dict[str, Any]:
    """A fresh copy of the defaults; the release builder writes it as the tarball's config/config.json."""
    return copy.deepcopy(_DEFAULTS)


def is_database_dsn(location: str) -> bool:
    return location.startswith(("postgres://", "postgresql://"))


@dataclass(frozen=True)
class ConfigSource:
    """Where the stored configuration lives: a file path or a database URL."""

    location: str

    @property
    def in_database(self) -> bool:
        return is_database_dsn(self.location)


def choose_source(flag: str | None, env: Mapping[str, str]) -> ConfigSource:
    """--config wins over $MM_CONFIG, which wins over config/config.json."""
    return ConfigSource(flag or env.get("MM_CONFIG") or DEFAULT_CONFIG_PATH)


@dataclass
class LoadedConfig:
    source: ConfigSource
    effective: dict[str, Any]  # what the server runs with: stored values over defaults, then MM_* overrides
    path: Path | None = None  # the config file, when the configuration is a file
    overridden: list[str] = field(default_factory=list)  # "SqlSettings.DataSource", ... set from MM_*
    rejected_env: list[str] = field(default_factory=list)  # MM_* variables whose value did not fit the key
    added_keys: list[str] = field(default_factory=list)  # defaults that were written to the stored config
    created: bool = False  # the stored configuration did not exist and was created from defaults


def load(
    source: ConfigSource,
    env: Mapping[str, str],
    install_dir: Path,
    persist: bool,
    open_database: Callable[[str], Database] | None = None,
) -> LoadedConfig:
    """Read the stored configuration and compute the effective one.

    persist=True is what the server does at start: create a missing config from defaults and add
    missing default keys to it. Commands such as `db version` read without writing.
    """
    if source.in_database:
        opener = open_database or _open_database
        stored, added, created = _load_from_database(opener(source.location), source.location, persist)
        loaded = LoadedConfig(source, {}, None, added_keys=added, created=created)
    else:
        path = resolve_config_path(source.location, install_dir)
        stored, added, created = _load_from_file(path, persist)
        loaded = LoadedConfig(source, {}, path, added_keys=added, created=created)
    effective = with_defaults(stored, _DEFAULTS)
    loaded.overridden, loaded.rejected_env = apply_env_overrides(effective, env)
    loaded.effective = effective
    return loaded


# Merging ------------------------------------------------------------------------------------------------


def with_defaults(stored: Mapping[str, Any], defaults: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Stored values over defaults; a null where the default has a value means "unset", as in Go.

    A value whose JSON type cannot be what the setting needs is an error, as it is when the real
    server unmarshals config.json into its typed struct.
    """
    merged: dict[str, Any] = copy.deepcopy(dict(defaults))
    for key, value in stored.items():
        default = defaults.get(key)
        if value is None and default is not None:
            continue
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{prefix}{key} must be a JSON object, not {type(value).__name__}")
            merged[key] = with_defaults(value, default, f"{prefix}{key}.")
        elif isinstance(default, str) and not isinstance(value, str):
            raise ConfigError(f"{prefix}{key} must be a string, not {type(value).__name__}")
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def add_missing_keys(
    stored: Mapping[str, Any], defaults: Mapping[str, Any], prefix: str = ""
) -> tuple[dict[str, Any], list[str]]:
    """Stored config plus the default keys it lacks; existing values (even odd ones) stay untouched.

    Key order is kept and new keys go to the end of their section, so a diff of the file is readable.
    """
    result: dict[str, Any] = {}
    added: list[str] = []
    for key, value in stored.items():
        default = defaults.get(key)
        if isinstance(value, dict) and isinstance(default, dict):
            result[key], nested = add_missing_keys(value, default, f"{prefix}{key}.")
            added.extend(nested)
        else:
            result[key] = value
    for key, default in defaults.items():
        if key not in stored:
            result[key] = copy.deepcopy(default)
            added.append(f"{prefix}{key}")
    return result, added


# Environment overrides ----------------------------------------------------------------------------------


def apply_env_overrides(config: dict[str, Any], env: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """Apply MM_<SECTION>_<KEY>=value in place; returns (keys overridden, variables rejected).

    Section and key match case-insensitively; the value is converted to the type the key already has.
    Variables that name no known key (MM_CONFIG, MM_INSTALL_TYPE, ...) are not overrides and are ignored.
    """
    overridden: list[str] = []
    rejected: list[str] = []
    for name in sorted(env):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        section_part, sep, key_part = name[len(ENV_PREFIX) :].partition("_")
        if not sep:
            continue
        section = _match_key(config, section_part)
        if section is None or not isinstance(config[section], dict):
            continue
        key = _match_key(config[section], key_part)
        if key is None or isinstance(config[section][key], dict):
            continue
        try:
            config[section][key] = convert_env_value(env[name], config[section][key])
        except ValueError:
            rejected.append(name)
            continue
        overridden.append(f"{section}.{key}")
    return overridden, rejected


def _match_key(mapping: Mapping[str, Any], wanted: str) -> str | None:
    wanted_upper = wanted.upper()
    for key in mapping:
        if key.upper() == wanted_upper:
            return key
    return None


def convert_env_value(raw: str, current: Any) -> Any:
    """Convert an environment string to the type of the value it replaces."""
    if isinstance(current, bool):
        word = raw.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise ValueError(f"not a boolean: {raw!r}")
    if isinstance(current, int):
        return int(raw.strip())
    if isinstance(current, float):
        return float(raw.strip())
    if isinstance(current, list):
        # The real server splits list settings given in the environment on spaces.
        return raw.split()
    return raw


# Config file --------------------------------------------------------------------------------------------


def resolve_config_path(location: str, install_dir: Path) -> Path:
    """A relative path is looked up in the working directory first, then in the install directory.

    The real server searches next to its binary too, so `bin/mattermost` started from elsewhere still
    finds <install>/config/config.json. When neither exists, the working-directory path is used.
    """
    path = Path(location)
    if path.is_absolute() or path.exists():
        return path
    beside_install = install_dir / path
    if beside_install.exists():
        return beside_install
    if location == DEFAULT_CONFIG_PATH and install_dir.is_dir():
        return beside_install
    return path


def _load_from_file(path: Path, persist: bool) -> tuple[dict[str, Any], list[str], bool]:
    if not path.exists():
        if not persist:
            return {}, [], False
        # Like the real file store: a missing config file is created from the defaults (mode 0600).
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomically(path, default_config(), mode=0o600)
        except OSError as exc:
            raise ConfigError(f"failed to create config file {path}: {exc.strerror or exc}") from None
        return default_config(), [], True
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"failed to read config file {path}: {exc.strerror or exc}") from None
    try:
        stored = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"config file {path} is not valid JSON: {exc}") from None
    if not isinstance(stored, dict):
        raise ConfigError(f"config file {path} does not hold a JSON object")
    try:
        with_defaults(stored, _DEFAULTS)  # validate before anything is written back
    except ConfigError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    if not persist:
        return stored, [], False
    completed, added = add_missing_keys(stored, _DEFAULTS)
    if added and _writable(path):
        try:
            write_json_atomically(path, completed)
        except OSError:
            # A read-only config is allowed (ClusterSettings.ReadOnlyConfig, immutable deployments).
            return stored, [], False
        return completed, added, False
    return stored, [], False


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK)


def write_json_atomically(path: Path, document: Mapping[str, Any], mode: int | None = None) -> None:
    """Write JSON the way the real server does (4-space indent) without ever leaving a half file.

    The new file gets the old one's mode and owner, so a 0600 mattermost-owned config stays that way
    even when root starts the server. If the directory is not writable, the file is rewritten in place.
    """
    text = json.dumps(document, indent=4) + "\n"
    target = path.resolve() if path.exists() else path
    old = target.stat() if target.exists() else None
    new_mode = stat.S_IMODE(old.st_mode) if old is not None else (mode if mode is not None else 0o600)
    try:
        fd, temp_name = tempfile.mkstemp(dir=str(target.parent), prefix=f".{target.name}.", suffix=".tmp")
    except PermissionError:
        if old is None:
            raise
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(text)
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, new_mode)
        if old is not None and (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
            # Not root: chown fails, and the file we could write is ours anyway.
            with contextlib.suppress(PermissionError):
                os.chown(temp_name, old.st_uid, old.st_gid)
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


# Config in the database ---------------------------------------------------------------------------------

# The real server's table (server/channels/db/migrations: create_configurations).
CONFIGURATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS Configurations ("
    "Id varchar(26) PRIMARY KEY, Value text NOT NULL, CreateAt bigint NOT NULL, Active boolean NULL UNIQUE)"
)


def _open_database(dsn: str) -> Database:
    database = Database(dsn)
    try:
        database.connect()
    except pgwire.Error as exc:
        raise ConfigError(f"failed to load configuration from the database: {exc}") from None
    return database


def _load_from_database(
    database: Database, dsn: str, persist: bool
) -> tuple[dict[str, Any], list[str], bool]:
    try:
        if persist:
            database.execute(CONFIGURATIONS_TABLE)
        elif not database.query("SELECT to_regclass('configurations') IS NOT NULL")[0][0]:
            return _seeded_defaults(dsn), [], False
        rows = database.query("SELECT Value FROM Configurations WHERE Active")
        if not rows:
            stored = _seeded_defaults(dsn)
            if persist:
                _save_active(database, stored)
            return stored, [], persist
        try:
            stored = json.loads(rows[0][0])
        except ValueError as exc:
            raise ConfigError(f"the active configuration in the database is not valid JSON: {exc}") from None
        if not isinstance(stored, dict):
            raise ConfigError("the active configuration in the database is not a JSON object")
        with_defaults(stored, _DEFAULTS)  # validate before anything is written back
        if not persist:
            return stored, [], False
        completed, added = add_missing_keys(stored, _DEFAULTS)
        if added:
            _save_active(database, completed)
        return completed, added, False
    except pgwire.Error as exc:
        raise ConfigError(f"failed to load configuration from the database: {exc}") from None
    finally:
        database.close()


def _seeded_defaults(dsn: str) -> dict[str, Any]:
    # The defaults' DataSource points at mattermost_test@localhost; the database that holds the
    # configuration is the sensible place for the data until an admin says otherwise.
    seeded = default_config()
    seeded["SqlSettings"]["DataSource"] = dsn
    return seeded


def _save_active(database: Database, document: Mapping[str, Any]) -> None:
    """Store a new active row and keep the old one as history, as the real database store does."""
    with database.transaction():
        database.execute("UPDATE Configurations SET Active = NULL WHERE Active")
        database.execute(
            "INSERT INTO Configurations (Id, Value, CreateAt, Active) VALUES ($1, $2, $3, true)",
            [store.new_id(), json.dumps(document), store.now_ms()],
        )
