"""Keep database credentials out of everything mmupgrade prints, logs or journals.

Secrets are registered as soon as they are read (the data source from the unit's environment or the
config); every line on its way out goes through redact(), so even a tool's error text that quotes the
connection string cannot leak the password.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, urlsplit, urlunsplit

MASK = "****"


def mask_data_source(dsn: str) -> str:
    """The data source with its password replaced by ****, the way Mattermost's own logs show it."""
    if "://" not in dsn:
        # libpq key=value form: "host=... password=secret ..."
        return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", rf"\1{MASK}", dsn)
    try:
        parts = urlsplit(dsn)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, host = netloc.rpartition("@")
            if ":" in userinfo:
                netloc = f"{userinfo.split(':', 1)[0]}:{MASK}@{host}"
        query = re.sub(r"(^|&)(password=)[^&]*", rf"\1\2{MASK}", parts.query)
        return urlunsplit(parts._replace(netloc=netloc, query=query))
    except ValueError:
        return "(data source not shown)"


class Secrets:
    """The strings that must never be shown, and how to show text without them."""

    def __init__(self) -> None:
        self._replacements: dict[str, str] = {}

    def add_password(self, password: str) -> None:
        # Too short a "password" would mask innocent text everywhere; such a password is no secret anyway.
        if len(password) < 3:
            return
        for form in {password, quote(password, safe=""), quote(password)}:
            self._replacements[form] = MASK

    def add_data_source(self, dsn: str) -> None:
        """Register a connection string: its password, and the string itself (shown masked)."""
        if not dsn:
            return
        self._replacements[dsn] = mask_data_source(dsn)
        password = _password_of(dsn)
        if password:
            self.add_password(password)

    def redact(self, text: str) -> str:
        # Longest first, so a DSN is replaced whole before its password alone would be.
        for secret in sorted(self._replacements, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, self._replacements[secret])
        return text


def _password_of(dsn: str) -> str | None:
    if "://" not in dsn:
        match = re.search(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", dsn)
        if not match:
            return None
        value = match.group(1)
        return value[1:-1].replace("\\'", "'").replace("\\\\", "\\") if value.startswith("'") else value
    try:
        netloc = urlsplit(dsn).netloc
    except ValueError:
        return None
    userinfo = netloc.rpartition("@")[0]
    if ":" in userinfo:
        return unquote(userinfo.split(":", 1)[1])
    query_password = re.search(r"(?:^|[?&])password=([^&]*)", dsn)
    return unquote(query_password.group(1)) if query_password else None
