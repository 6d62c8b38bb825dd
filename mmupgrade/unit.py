"""The systemd unit Mattermost runs under: where it runs from and the environment it gets.

Where systemd runs, `systemctl show` gives the merged view (unit file plus drop-ins); elsewhere (a
container without systemd, tests) the unit file and its drop-ins are read directly with the same rules.
Environment files are parsed the way systemd parses them, so mmupgrade sees what the server sees.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

UNIT_DIRS = (
    Path("/etc/systemd/system"),
    Path("/run/systemd/system"),
    Path("/usr/local/lib/systemd/system"),
    Path("/lib/systemd/system"),
    Path("/usr/lib/systemd/system"),
)
SHOW_PROPERTIES = "FragmentPath,DropInPaths,WorkingDirectory,ExecStart,Environment,EnvironmentFiles"


@dataclass
class EnvironmentFile:
    path: Path
    optional: bool  # "EnvironmentFile=-/path": a missing file is not an error


@dataclass
class Unit:
    name: str
    fragment_path: Path | None = None
    dropin_paths: list[Path] = field(default_factory=list)
    working_directory: Path | None = None
    exec_start: list[str] = field(default_factory=list)
    environment: list[str] = field(default_factory=list)  # "KEY=value" in the order systemd applies them
    environment_files: list[EnvironmentFile] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return self.fragment_path is not None

    def files(self) -> list[Path]:
        """The unit file and drop-ins, for the backup."""
        return [p for p in [self.fragment_path, *self.dropin_paths] if p is not None]


def service_name(unit: str) -> str:
    return unit if unit.endswith(".service") else f"{unit}.service"


def systemd_running() -> bool:
    # What sd_booted() checks: only a system booted with systemd has this directory.
    return os.path.isdir("/run/systemd/system")


def read_unit(unit: str, unit_dirs: Sequence[Path] = UNIT_DIRS, use_systemctl: bool | None = None) -> Unit:
    """The unit's settings, from systemctl where systemd runs, else from its files."""
    name = service_name(unit)
    if use_systemctl is None:
        use_systemctl = systemd_running()
    if use_systemctl:
        shown = _systemctl_show(name)
        if shown is not None:
            return shown
    return read_unit_files(name, unit_dirs)


# --- systemctl show ---------------------------------------------------------------------------------


def _systemctl_show(name: str) -> Unit | None:
    try:
        proc = subprocess.run(  # noqa: S603 - fixed argv, no shell
            ["systemctl", "show", "-p", SHOW_PROPERTIES, "--", name],  # noqa: S607 - systemctl from PATH
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return parse_show_output(name, proc.stdout)


def parse_show_output(name: str, text: str) -> Unit:
    """Parse `systemctl show -p FragmentPath,DropInPaths,WorkingDirectory,ExecStart,Environment,...`."""
    result = Unit(name)
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key == "FragmentPath" and value:
            result.fragment_path = Path(value)
        elif key == "DropInPaths" and value:
            result.dropin_paths = [Path(p) for p in value.split()]
        elif key == "WorkingDirectory" and value:
            directory = value.lstrip("-!")
            if directory.startswith("/"):
                result.working_directory = Path(directory)
        elif key == "ExecStart" and value:
            match = re.search(r"argv\[\]=(.*?) ;", value)
            if match:
                result.exec_start = split_words(match.group(1))
        elif key == "Environment" and value:
            result.environment.extend(split_words(value))
        elif key == "EnvironmentFiles" and value:
            # "/etc/mattermost/mattermost.env (ignore_errors=no)", one property line per file
            match = re.fullmatch(r"(.*?)(?: \(ignore_errors=(yes|no)\))?", value)
            if match:
                result.environment_files.append(
                    EnvironmentFile(Path(match.group(1)), match.group(2) == "yes")
                )
    return result


# --- unit files -------------------------------------------------------------------------------------


def read_unit_files(name: str, unit_dirs: Sequence[Path] = UNIT_DIRS) -> Unit:
    """Read the unit file and its drop-ins (name.service.d/*.conf) with systemd's precedence."""
    name = service_name(name)
    result = Unit(name)
    for directory in unit_dirs:
        candidate = directory / name
        if candidate.is_file():
            result.fragment_path = candidate
            break
    if result.fragment_path is None:
        return result
    dropins: dict[str, Path] = {}
    for directory in unit_dirs:
        conf_dir = directory / f"{name}.d"
        if conf_dir.is_dir():
            for conf in conf_dir.glob("*.conf"):
                # A drop-in with the same name in a higher-priority directory hides this one.
                dropins.setdefault(conf.name, conf)
    result.dropin_paths = [dropins[key] for key in sorted(dropins)]
    for path in [result.fragment_path, *result.dropin_paths]:
        _apply_service_section(result, path.read_text(encoding="utf-8", errors="replace"))
    return result


def _apply_service_section(result: Unit, text: str) -> None:
    for key, value in service_settings(text):
        if key == "WorkingDirectory":
            directory = value.lstrip("-!")
            result.working_directory = Path(directory) if directory.startswith("/") else None
        elif key == "ExecStart":
            # An empty assignment resets the list (how drop-ins replace ExecStart).
            result.exec_start = split_words(value.lstrip("@-:+!")) if value else []
        elif key == "Environment":
            if value:
                result.environment.extend(split_words(value))
            else:
                result.environment = []
        elif key == "EnvironmentFile":
            if value:
                optional = value.startswith("-")
                result.environment_files.append(EnvironmentFile(Path(value.lstrip("-")), optional))
            else:
                result.environment_files = []


def service_settings(text: str) -> list[tuple[str, str]]:
    """(key, value) pairs of the [Service] section, continuation lines joined, comments dropped."""
    settings: list[tuple[str, str]] = []
    section = ""
    pending = ""
    for raw in text.splitlines():
        line = raw.strip() if not pending else raw.rstrip()
        if not pending and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if section != "Service":
            continue
        key, sep, value = line.partition("=")
        if sep:
            settings.append((key.strip(), value.strip()))
    return settings


def split_words(value: str) -> list[str]:
    """Split like systemd splits Environment= and ExecStart=: quotes group, backslashes escape."""
    try:
        return shlex.split(value, posix=True)
    except ValueError:
        return value.split()


# --- environment files ------------------------------------------------------------------------------


def parse_environment_file(text: str) -> dict[str, str]:
    """KEY=value lines as systemd reads EnvironmentFile= (env-file.c).

    Lines starting with # or ; are comments; values may be single-quoted (literal), double-quoted
    (backslash escapes \\" \\\\ \\` \\$, and newlines), or bare (backslash escapes the next character,
    trailing whitespace dropped); a backslash at the end of a line continues the value. A # inside a
    value is part of it. "export KEY=value" is not systemd syntax and is read as the key "export KEY".
    """
    result: dict[str, str] = {}
    position = 0
    length = len(text)
    while position < length:
        # Skip whitespace and blank lines before a key.
        while position < length and text[position] in " \t\r\n":
            position += 1
        if position >= length:
            break
        if text[position] in "#;":
            newline = text.find("\n", position)
            position = length if newline < 0 else newline + 1
            continue
        newline = text.find("\n", position)
        equals = text.find("=", position)
        if equals < 0 or (0 <= newline < equals):
            # A line without "=" is ignored, as systemd does (with a warning).
            position = length if newline < 0 else newline + 1
            continue
        key = text[position:equals].strip()
        value, position = _read_value(text, equals + 1)
        if key and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            result[key] = value
    return result


def _read_value(text: str, position: int) -> tuple[str, int]:
    length = len(text)
    while position < length and text[position] in " \t":
        position += 1
    parts: list[str] = []
    trailing_space = 0  # whitespace at the end of a bare value is dropped
    while position < length:
        char = text[position]
        if char == "\n":
            position += 1
            break
        if char == "'":
            end = text.find("'", position + 1)
            end = length if end < 0 else end
            parts.append(text[position + 1 : end])
            trailing_space = 0
            position = end + 1
            continue
        if char == '"':
            position += 1
            while position < length and text[position] != '"':
                if text[position] == "\\" and position + 1 < length:
                    following = text[position + 1]
                    if following in '"\\`$':
                        parts.append(following)
                    elif following != "\n":
                        parts.append("\\" + following)
                    position += 2
                    continue
                parts.append(text[position])
                position += 1
            position += 1
            trailing_space = 0
            continue
        if char == "\\" and position + 1 < length:
            following = text[position + 1]
            if following != "\n":
                parts.append(following)
            position += 2
            trailing_space = 0
            continue
        parts.append(char)
        trailing_space = trailing_space + 1 if char in " \t\r" else 0
        position += 1
    value = "".join(parts)
    if trailing_space:
        value = value[:-trailing_space]
    return value, position


def unit_environment(unit: Unit) -> dict[str, str]:
    """The environment the service gets: Environment= first, then EnvironmentFile= files in order.

    systemd.exec(5): "Settings from these files override settings made with Environment=".
    A missing file without the "-" prefix fails the service start; it is reported here the same way.
    """
    env: dict[str, str] = {}
    for assignment in unit.environment:
        key, sep, value = assignment.partition("=")
        if sep:
            env[key] = value
    for env_file in unit.environment_files:
        try:
            text = env_file.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            if env_file.optional:
                continue
            raise
        env.update(parse_environment_file(text))
    return env
