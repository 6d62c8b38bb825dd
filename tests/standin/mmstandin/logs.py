"""Server logging in the real server's JSON-lines shape, to the console and to LogSettings.FileLocation.

Every module logs through the standard `logging` package under the "mmstandin" logger; this module
only decides where the lines go and what they look like. Secrets registered with redact() (the
database password) are replaced by **** in every line, whatever code logged them.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote, urlsplit

LOGGER_NAME = "mmstandin"
LOG_FILE_NAME = "mattermost.log"
MASK = "****"
# mlog level names as they appear in config.json (ConsoleLevel, FileLevel).
LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARN": logging.WARNING, "ERROR": logging.ERROR}
LEVEL_NAMES = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn", logging.ERROR: "error"}

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def get_logger(name: str = "") -> logging.Logger:
    return logging.getLogger(f"{LOGGER_NAME}.{name}" if name else LOGGER_NAME)


def redact(secret: str) -> None:
    """Never let this string reach a log line (also in its percent-encoded form)."""
    if len(secret) < 3:
        return  # masking one or two characters would mangle every line and hide nothing
    with _secrets_lock:
        _secrets.update({secret, quote(secret, safe="")})


def redact_data_source(dsn: str) -> None:
    try:
        password = urlsplit(dsn).password
    except ValueError:
        return
    if password:
        redact(password)


def scrub(text: str) -> str:
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


class JsonLineFormatter(logging.Formatter):
    """One compact JSON object per line, like mlog's: timestamp, level, msg, caller, then fields.

    {"timestamp":"2026-08-21 10:00:00.123 Z","level":"info","msg":"...","caller":"mmstandin/server.py:42"}
    """

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": _timestamp(record.created),
            "level": LEVEL_NAMES.get(record.levelno, record.levelname.lower()),
            "msg": record.getMessage(),
            "caller": f"mmstandin/{record.filename}:{record.lineno}",
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            line.update(fields)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return scrub(json.dumps(line, separators=(",", ":"), default=str))


def _timestamp(created: float) -> str:
    # mlog's format: "2006-01-02 15:04:05.000 Z07:00", in UTC here.
    seconds = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created * 1000) % 1000:03d} Z"


def level_of(name: object, fallback: int = logging.INFO) -> int:
    return LEVELS.get(str(name).upper(), fallback)


def log_file_path(file_location: str, default_logs_dir: Path) -> Path:
    """LogSettings.FileLocation names a directory (the real server appends mattermost.log).

    A value ending in ".log" is taken as the file itself, which some deployments use.
    """
    if not file_location:
        return default_logs_dir / LOG_FILE_NAME
    location = Path(file_location)
    if location.suffix == ".log" and not location.is_dir():
        return location
    return location / LOG_FILE_NAME


def setup(
    log_settings: Mapping[str, Any], default_logs_dir: Path, stdout: TextIO | None = None
) -> Path | None:
    """Route the "mmstandin" logger to the console and the log file; returns the file in use, if any."""
    logger = get_logger()
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    formatter = JsonLineFormatter()
    if log_settings.get("EnableConsole", True):
        console = logging.StreamHandler(stdout or sys.stdout)
        console.setLevel(level_of(log_settings.get("ConsoleLevel")))
        console.setFormatter(formatter)
        logger.addHandler(console)
    log_file: Path | None = None
    if log_settings.get("EnableFile", True):
        log_file = log_file_path(str(log_settings.get("FileLocation") or ""), default_logs_dir)
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            file_handler = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as exc:
            # The real server keeps running with console logging when the file cannot be opened.
            logger.warning(
                "failed to open the log file, logging to the console only",
                extra={"fields": {"path": str(log_file), "error": exc.strerror or str(exc)}},
            )
            log_file = None
        else:
            file_handler.setLevel(level_of(log_settings.get("FileLevel")))
            file_handler.setFormatter(formatter)
            logger.addHandler(file_handler)
    return log_file


def shutdown() -> None:
    logger = get_logger()
    for handler in list(logger.handlers):
        handler.flush()
        handler.close()
        logger.removeHandler(handler)
