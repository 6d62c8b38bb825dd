"""The server's effective settings, read the way the server reads them.

Where the configuration lives: $MM_CONFIG (a file path, or a postgres:// URL: the Configurations table),
else config/config.json (looked up in the working directory, then next to the binary). Then every
MM_<SECTION>_<KEY> variable of the unit's environment overrides the stored value (case-insensitive).
Relative paths (./data/) are relative to the working directory, as for the server.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

DEFAULT_CONFIG_PATH = "config/config.json"
# The settings mmupgrade acts on, with the server's defaults.
DEFAULTS: dict[str, dict[str, Any]] = {
    "SqlSettings": {
        "DriverName": "postgres",
        "DataSource": "postgres://mmuser:mostest@localhost/mattermost_test?sslmode=disable&connect_timeout=10",
    },
    "ServiceSettings": {"ListenAddress": ":8065", "ConnectionSecurity": ""},
    "FileSettings": {"DriverName": "local", "Directory": "./data/"},
    "PluginSettings": {"Directory": "./plugins", "ClientDirectory": "./client/plugins"},
    "LogSettings": {"FileLocation": ""},
}

ReadDatabaseConfig = Callable[[str], Optional[dict]]


class SettingsError(Exception):
    pass


def is_database_location(location: str) -> bool:
    return location.startswith(("postgres://", "postgresql://"))


@dataclass
class Settings:
    config_location: str  # MM_CONFIG or the default, as the server sees it (a DSN is never shown)
    config_file: Path | None  # the config file, when the configuration is a file
    config_database: str | None  # the DSN of the database holding the configuration (MM_CONFIG)
    effective: dict[str, dict[str, Any]]
    working_dir: Path

    def get(self, section: str, key: str) -> Any:
        return self.effective.get(section, {}).get(key)

    @property
    def data_source(self) -> str:
        return str(self.get("SqlSettings", "DataSource") or "")

    @property
    def driver(self) -> str:
        return str(self.get("SqlSettings", "DriverName") or "")

    @property
    def listen_address(self) -> str:
        return str(self.get("ServiceSettings", "ListenAddress") or ":8065")

    @property
    def tls(self) -> bool:
        return str(self.get("ServiceSettings", "ConnectionSecurity") or "").upper() == "TLS"

    def path(self, section: str, key: str, fallback: str) -> Path:
        value = str(self.get(section, key) or fallback)
        path = Path(value)
        return path if path.is_absolute() else (self.working_dir / path)

    @property
    def data_dir(self) -> Path | None:
        if str(self.get("FileSettings", "DriverName") or "local") != "local":
            return None  # S3 and friends: nothing on this host to keep
        return self.path("FileSettings", "Directory", "./data/")

    @property
    def plugins_dir(self) -> Path:
        return self.path("PluginSettings", "Directory", "./plugins")

    @property
    def client_plugins_dir(self) -> Path:
        return self.path("PluginSettings", "ClientDirectory", "./client/plugins")

    @property
    def logs_dir(self) -> Path:
        return self.path("LogSettings", "FileLocation", "./logs")


def effective_settings(
    env: Mapping[str, str],
    working_dir: Path,
    install_tree: Path,
    read_database_config: ReadDatabaseConfig | None = None,
) -> Settings:
    location = env.get("MM_CONFIG") or DEFAULT_CONFIG_PATH
    stored: dict[str, Any] = {}
    config_file = None
    config_database = None
    if is_database_location(location):
        config_database = location
        if read_database_config is not None:
            stored = read_database_config(location) or {}
    else:
        config_file = resolve_config_path(location, working_dir, install_tree)
        stored = read_config_file(config_file)
    effective = merge_defaults(stored)
    apply_env_overrides(effective, env)
    return Settings(
        location if config_database is None else "database",
        config_file,
        config_database,
        effective,
        working_dir,
    )


def resolve_config_path(location: str, working_dir: Path, install_tree: Path) -> Path:
    """A relative path is found in the working directory first, then in the install tree."""
    path = Path(location)
    if path.is_absolute():
        return path
    in_working_dir = working_dir / path
    if in_working_dir.exists():
        return in_working_dir
    beside_binary = install_tree / path
    if beside_binary.exists():
        return beside_binary
    return in_working_dir


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}  # the server would create it from defaults
    except OSError as exc:
        raise SettingsError(f"cannot read the config file {path}: {exc.strerror or exc}") from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise SettingsError(f"the config file {path} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise SettingsError(f"the config file {path} does not hold a JSON object")
    return document


def merge_defaults(stored: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    merged = copy.deepcopy(DEFAULTS)
    for section, values in stored.items():
        if not isinstance(values, dict):
            continue
        target = merged.setdefault(section, {})
        for key, value in values.items():
            if value is not None:
                target[key] = value
    return merged


def apply_env_overrides(config: dict[str, dict[str, Any]], env: Mapping[str, str]) -> list[str]:
    """MM_<SECTION>_<KEY>=value wins over the stored value; returns the settings overridden."""
    overridden = []
    for name in sorted(env):
        if not name.upper().startswith("MM_"):
            continue
        section_part, sep, key_part = name[3:].partition("_")
        if not sep:
            continue
        section = _match(config, section_part)
        if section is None:
            continue
        key = _match(config[section], key_part)
        if key is None or isinstance(config[section][key], dict):
            continue
        config[section][key] = env[name]
        overridden.append(f"{section}.{key}")
    return overridden


def _match(mapping: Mapping[str, Any], wanted: str) -> str | None:
    for key in mapping:
        if key.upper() == wanted.upper():
            return key
    return None
