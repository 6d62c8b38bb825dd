"""Reading the effective config with the real server's defaults for keys the file leaves out."""

from __future__ import annotations

from typing import Any


def setting(app: Any, section: str, key: str, default: Any) -> Any:
    value = ((getattr(app, "config", None) or {}).get(section) or {}).get(key)
    return default if value is None else value


def setting_bool(app: Any, section: str, key: str, default: bool) -> bool:
    value = setting(app, section, key, default)
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


def setting_int(app: Any, section: str, key: str, default: int) -> int:
    try:
        return int(setting(app, section, key, default))
    except (TypeError, ValueError):
        return default
