"""Test hosts for the mmupgrade end-to-end tests: systemd containers driven with the docker CLI.

Three image levels keep each test fast (every level is a `docker commit` of a prepared container):

    mmtest/debian:12                    the bed's base image (tests/bed/up builds it)
    mmtest/e2e-packages:<recipe hash>   + PostgreSQL, postgresql-client, gnupg, en_US.UTF-8 locale; kept
                                        across sessions, rebuilt when the recipe or the base image changes
    mmtest/e2e-staged:<session>         + the database and its user, the stand-in release mirrors, the test
                                        tools and keys (one per session: the releases are built per session)
    mmtest/e2e-installed:<session>-...  + Mattermost installed in one layout, running, with the Certified
                                        smoke test's data (one per layout and version, made on first use)

Every test runs in its own container from one of these images. Test containers have no network at all
(`--network none`): the release mirror runs inside the container on 127.0.0.1, HTTP checks run inside the
container with `docker exec`, so nothing leaves the container (TESTBED.md section 4). Only the packages image
is built with a network, to run apt-get against the Debian mirror the base image is configured with.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shlex
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DOCKER = "/usr/bin/docker"
BASE_IMAGE = "mmtest/debian:12"
PACKAGES_REPO = "mmtest/e2e-packages"
STAGED_REPO = "mmtest/e2e-staged"
INSTALLED_REPO = "mmtest/e2e-installed"
LABEL = "mmtest.e2e"  # every container and session image carries it: `docker ps -a --filter label=mmtest.e2e`

# The systemd container options of TESTBED.md section 3 (same as .config/molecule/config.yml).
SYSTEMD_OPTIONS = (
    "--cgroupns=host",
    "--cap-add=SYS_ADMIN",
    "--security-opt=seccomp=unconfined",
    "--volume=/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs=/run",
    "--tmpfs=/run/lock",
    "--stop-signal=SIGRTMIN+3",
)

# strace: killer.py kills mmupgrade at an exact rename(2) of the switch (syscall fault injection).
PACKAGES = ("postgresql", "postgresql-client", "gnupg", "locales", "strace")
# A throwaway test database: no fsync (nothing here survives a power cut, and nothing needs to).
POSTGRES_TUNING = "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
PACKAGES_RECIPE = "e2e-packages;" + ",".join(PACKAGES) + ";en_US.UTF-8;" + POSTGRES_TUNING + ";v2"

BED_HINT = "run `tests/bed/up` first (the project's test command, scripts/test, does)"

# Paths inside the test containers.
TOOLS_DIR = "/usr/local/lib/mmtest"
MIRROR_DIR = "/srv/mirror"  # one served root per subdirectory: /srv/mirror/<name>/<V>/<tarball>
MIRROR_PORT = 8000
MIRROR_URL = f"http://127.0.0.1:{MIRROR_PORT}"
RELEASES_API = f"{MIRROR_URL}/api/releases"
MM_URL = "http://127.0.0.1:8065"
SIGNING_KEY = "/root/signing-key.asc"
OTHER_KEY = "/root/other-signing-key.asc"
FINGERPRINT = "/root/smoke.json"
MMUPGRADE = "/usr/local/sbin/mmupgrade"
JOURNAL = "/var/lib/mmupgrade/journal.json"

DB_NAME = "mattermost"
DB_USER = "mmuser"

# The official unit, verbatim from the tarball install guide (mattermost-facts.md section 2).
OFFICIAL_UNIT = """\
[Unit]
Description=Mattermost
After=network.target

[Service]
Type=notify
ExecStart=/opt/mattermost/bin/mattermost
TimeoutStartSec=3600
KillMode=mixed
Restart=always
RestartSec=10
WorkingDirectory=/opt/mattermost
User=mattermost
Group=mattermost
LimitNOFILE=49152

[Install]
WantedBy=multi-user.target
"""

# What roles/mattermost/templates/mattermost.service.j2 renders with the role's defaults (local database,
# 127.0.0.1:8065, hardening on).
VERSIONED_UNIT = """\
# Ansible managed
# The official unit (deploy-tar guide) with the release symlink, the installer's environment file and a
# systemd sandbox. TimeoutStartSec is long because schema migrations run at start, before READY=1.
[Unit]
Description=Mattermost
After=network.target postgresql.service
BindsTo=postgresql.service

[Service]
Type=notify
ExecStart=/opt/mattermost/current/bin/mattermost
TimeoutStartSec=3600
KillMode=mixed
Restart=always
RestartSec=10
WorkingDirectory=/opt/mattermost/current
User=mattermost
Group=mattermost
LimitNOFILE=49152
EnvironmentFile=/etc/mattermost/mattermost.env

# Sandbox. The release tree and the rest of the system are read-only; the server writes only its state.
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=/var/opt/mattermost /var/opt/mattermost/data /var/opt/mattermost/logs
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LockPersonality=yes
UMask=0027
# No capabilities at all, or only the one needed to bind a port below 1024.
CapabilityBoundingSet=

[Install]
WantedBy=multi-user.target
"""


class HarnessError(Exception):
    """The test bed could not do what a test asked (not a finding about mmupgrade)."""


def tarball_name(version: str, edition: str = "enterprise") -> str:
    prefix = "mattermost-team-" if edition == "team" else "mattermost-"
    return f"{prefix}{version}-linux-amd64.tar.gz"


def data_source(password: str) -> str:
    return f"postgres://{DB_USER}:{password}@localhost:5432/{DB_NAME}?sslmode=disable&connect_timeout=10"


def versioned_env_file(password: str) -> str:
    """roles/mattermost/templates/mattermost.env.j2 rendered with the role's defaults."""
    dsn = f"postgres://{DB_USER}:{password}@127.0.0.1:5432/{DB_NAME}?sslmode=disable&connect_timeout=10"
    return (
        "# Ansible managed\n"
        "# Settings owned by the installer. They override config.json and are greyed out in the System "
        "Console;\n"
        "# everything else stays editable there. Read by mattermost.service (EnvironmentFile=).\n"
        'MM_CONFIG="/var/opt/mattermost/config/config.json"\n'
        'MM_SQLSETTINGS_DRIVERNAME="postgres"\n'
        f'MM_SQLSETTINGS_DATASOURCE="{dsn}"\n'
        f'MM_SERVICESETTINGS_SITEURL="{MM_URL}"\n'
        'MM_SERVICESETTINGS_LISTENADDRESS="127.0.0.1:8065"\n'
        'MM_FILESETTINGS_DIRECTORY="/var/opt/mattermost/data/"\n'
        'MM_PLUGINSETTINGS_DIRECTORY="/var/opt/mattermost/plugins"\n'
        'MM_PLUGINSETTINGS_CLIENTDIRECTORY="/var/opt/mattermost/client/plugins"\n'
        'MM_LOGSETTINGS_FILELOCATION="/var/opt/mattermost/logs"\n'
    )


# --------------------------------------------------------------------------------------------- docker


def docker(
    *args: str,
    check: bool = True,
    timeout: float = 300,
    input: bytes | None = None,
) -> subprocess.CompletedProcess:
    """Run the docker client; raise HarnessError with its output when it fails and check is set."""
    try:
        proc = subprocess.run([DOCKER, *args], capture_output=True, timeout=timeout, input=input, check=False)
    except subprocess.TimeoutExpired as exc:
        raise HarnessError(f"docker {' '.join(args[:3])} ... did not finish within {timeout:.0f} s") from exc
    if check and proc.returncode != 0:
        raise HarnessError(
            f"docker {' '.join(args[:4])} ... failed ({proc.returncode}): "
            f"{proc.stderr.decode(errors='replace').strip()[-2000:]}"
        )
    return proc


def require_bed() -> None:
    """Fail (never skip) with the way out when docker or the bed's base image is missing."""
    if not os.access(DOCKER, os.X_OK):
        raise HarnessError(f"{DOCKER} is missing: {BED_HINT}")
    info = subprocess.run(
        [DOCKER, "info", "--format", "{{.ServerVersion}}"], capture_output=True, check=False
    )
    if info.returncode != 0:
        raise HarnessError(f"the docker engine does not answer: {BED_HINT}")
    if docker("image", "inspect", BASE_IMAGE, check=False).returncode != 0:
        raise HarnessError(f"the base image {BASE_IMAGE} is missing: {BED_HINT}")


def image_id(image: str) -> str | None:
    proc = docker("image", "inspect", "--format", "{{.Id}}", image, check=False)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def image_label(image: str, label: str) -> str | None:
    proc = docker(
        "image", "inspect", "--format", f'{{{{ index .Config.Labels "{label}" }}}}', image, check=False
    )
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def tar_bytes(files: Iterable[tuple[str, bytes, int]]) -> bytes:
    """A tar stream of (path inside the container, content, mode) owned by root.

    No directory entries: docker cp creates missing parents (0755) and leaves existing ones as they are.
    """
    buffer = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, content, mode in files:
            info = tarfile.TarInfo(path.strip("/"))
            info.size, info.mode, info.mtime = len(content), mode, now
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------------- host


@dataclass
class Host:
    """One systemd container. Commands run as root inside it with `docker exec`."""

    name: str
    db_password: str = field(repr=False, default="")
    layout: str = ""  # "official" | "versioned" | "" (nothing installed)
    installed: str = ""  # the version installed when the container was made
    log: list[str] = field(default_factory=list, repr=False)
    last_stdout: str = field(default="", repr=False)  # of the last mmupgrade run
    last_stderr: str = field(default="", repr=False)
    ready_seconds: float = 0.0  # how long make_host took to hand this host over
    last_seconds: float = 0.0  # how long the last mmupgrade run took

    # -- basic commands

    def run(
        self,
        cmd: str | Sequence[str],
        *,
        check: bool = True,
        timeout: float = 120,
        input: str | bytes | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess:
        """Run cmd (a shell string for bash, or an argv list) inside the container; text output."""
        argv = ["bash", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        prefix = [DOCKER, "exec", "-i" if input is not None else "-t=false"]
        for key, value in (env or {}).items():
            prefix += ["-e", f"{key}={value}"]
        data = input.encode() if isinstance(input, str) else input
        try:
            proc = subprocess.run(
                [*prefix, self.name, *argv], input=data, capture_output=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise HarnessError(f"{self.name}: {cmd!r} did not finish within {timeout:.0f} s") from exc
        result = subprocess.CompletedProcess(
            proc.args,
            proc.returncode,
            proc.stdout.decode(errors="replace"),
            proc.stderr.decode(errors="replace"),
        )
        self.log.append(f"$ {cmd if isinstance(cmd, str) else shlex.join(cmd)}  -> {proc.returncode}")
        if check and proc.returncode != 0:
            raise HarnessError(
                f"{self.name}: {cmd!r} failed ({proc.returncode})\nstdout: {result.stdout[-3000:]}\n"
                f"stderr: {result.stderr[-3000:]}"
            )
        return result

    def put(self, files: Iterable[tuple[str, bytes, int]]) -> None:
        """Copy a tree of new files (absolute path, content, mode) into the container, owned by root.

        Missing parent directories are created (root 0755); existing ones keep their owner and mode.
        """
        docker("cp", "-", f"{self.name}:/", input=tar_bytes(files))

    def write(self, path: str, content: str | bytes, mode: int = 0o644, owner: str = "root:root") -> None:
        """Write one file through stdin (parents must exist; their modes are left alone), then chown/chmod."""
        self.run(
            [
                "sh",
                "-c",
                'cat > "$1.e2e-tmp" && chown "$2" "$1.e2e-tmp" && chmod "$3" "$1.e2e-tmp" '
                '&& mv -f "$1.e2e-tmp" "$1"',
                "_",
                path,
                owner,
                f"{mode:o}",
            ],
            input=content if isinstance(content, bytes) else content.encode(),
        )

    def read(self, path: str) -> str:
        return self.run(["cat", path]).stdout

    def exists(self, path: str) -> bool:
        return self.run(["test", "-e", path], check=False).returncode == 0

    def stat(self, path: str) -> dict:
        """owner, group, mode (octal string) and type of path (symlinks not followed)."""
        out = self.run(["stat", "--format=%U %G %a %F", path]).stdout.split(maxsplit=3)
        return {"owner": out[0], "group": out[1], "mode": out[2], "type": out[3].strip()}

    def sha256(self, path: str) -> str:
        return self.run(["sha256sum", path]).stdout.split()[0]

    # -- systemd

    def wait_for_systemd(self, timeout: float = 90, *, booted: bool = True) -> None:
        """Wait until systemd has booted (booted=False: until its manager answers, units may still start)."""
        accept = "running|degraded" if booted else "starting|running|degraded"
        script = (
            f"end=$((SECONDS + {int(timeout)})); while [ $SECONDS -lt $end ]; do "
            "s=$(systemctl is-system-running 2>/dev/null); "
            f'case "$s" in {accept}) exit 0;; esac; sleep 0.1; done; echo "$s"; exit 1'
        )
        proc = self.run(script, check=False, timeout=timeout + 30)
        if proc.returncode != 0:
            raise HarnessError(
                f"{self.name}: systemd did not boot within {timeout:.0f} s (state {proc.stdout.strip()!r})"
            )

    def service_active(self, unit: str = "mattermost") -> str:
        return self.run(["systemctl", "is-active", unit], check=False).stdout.strip()

    def wait_for_postgres(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.run(["pg_isready", "-q", "-h", "127.0.0.1"], check=False).returncode == 0:
                return
            time.sleep(0.5)
        raise HarnessError(f"{self.name}: PostgreSQL did not accept connections within {timeout:.0f} s")

    # -- Mattermost

    def ping(self) -> dict:
        """GET /api/v4/system/ping inside the container: {"code", "status", "version_id"} (code 0: none)."""
        script = (
            "import json, urllib.request, urllib.error\n"
            "try:\n"
            f"    r = urllib.request.urlopen('{MM_URL}/api/v4/system/ping', timeout=5)\n"
            "    code, headers, body = r.status, r.headers, r.read()\n"
            "except urllib.error.HTTPError as e:\n"
            "    code, headers, body = e.code, e.headers, e.read()\n"
            "except Exception as e:\n"
            "    print(json.dumps({'code': 0, 'status': '', 'version_id': '', 'error': str(e)}))\n"
            "    raise SystemExit\n"
            "try:\n"
            "    status = json.loads(body).get('status', '')\n"
            "except ValueError:\n"
            "    status = ''\n"
            "version_id = headers.get('X-Version-Id', '')\n"
            "print(json.dumps({'code': code, 'status': status, 'version_id': version_id}))\n"
        )
        return json.loads(self.run(["python3", "-c", script], timeout=30).stdout)

    def version_serving(self) -> str | None:
        """The X.Y.Z in X-Version-Id when ping answers 200 OK, else None."""
        answer = self.ping()
        if answer["code"] != 200 or answer["status"] != "OK":
            return None
        return ".".join(answer["version_id"].split(".")[:3])

    def wait_serving(self, version: str | None = None, timeout: float = 90) -> str:
        """Wait (polling inside the container) until ping is OK, with version when given; return it."""
        script = (
            "import json, sys, time, urllib.request\n"
            f"want, deadline = {version!r}, time.monotonic() + {timeout}\n"
            "seen = None\n"
            "while time.monotonic() < deadline:\n"
            "    try:\n"
            f"        r = urllib.request.urlopen('{MM_URL}/api/v4/system/ping', timeout=5)\n"
            "        if json.loads(r.read()).get('status') == 'OK':\n"
            "            seen = '.'.join(r.headers.get('X-Version-Id', '').split('.')[:3])\n"
            "            if want is None or seen == want:\n"
            "                print(seen); sys.exit(0)\n"
            "    except Exception:\n"
            "        pass\n"
            "    time.sleep(0.2)\n"
            "print(seen); sys.exit(1)\n"
        )
        proc = self.run(["python3", "-c", script], check=False, timeout=timeout + 30)
        if proc.returncode != 0:
            raise HarnessError(
                f"{self.name}: Mattermost {version or ''} not serving within {timeout:.0f} s (last: "
                f"{proc.stdout.strip()}); unit {self.service_active()}\n{self.journal_tail()}"
            )
        return proc.stdout.strip()

    def journal_tail(self, unit: str = "mattermost", lines: int = 30) -> str:
        return self.run(["journalctl", "-u", unit, "-n", str(lines), "--no-pager"], check=False).stdout

    def schema_version(self) -> int:
        """The schema version the stand-in recorded in the database (db_migrations)."""
        out = self.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                "psql",
                "-d",
                DB_NAME,
                "-Atc",
                "SELECT COALESCE(MAX(Version), 0) FROM db_migrations",
            ]
        ).stdout
        return int(out.strip())

    def smoke_run(self) -> subprocess.CompletedProcess:
        return self.run(
            ["python3", f"{TOOLS_DIR}/mmsmoke.py", "run", "--url", MM_URL, "--fingerprint", FINGERPRINT],
            timeout=180,
        )

    def smoke_verify(self) -> subprocess.CompletedProcess:
        """The Certified smoke test's verify: raises HarnessError with its output when a check fails."""
        return self.run(
            ["python3", f"{TOOLS_DIR}/mmsmoke.py", "verify", "--url", MM_URL, "--fingerprint", FINGERPRINT],
            timeout=180,
        )

    def installed_version(self) -> str:
        """`bin/mattermost version` of the installed release (first line), run as the service user."""
        install_dir = "/opt/mattermost/current" if self.layout == "versioned" else "/opt/mattermost"
        out = self.run(f"cd {install_dir} && runuser -u mattermost -- bin/mattermost version").stdout
        return out.splitlines()[0].split(":", 1)[1].strip()

    def materialize(self) -> None:
        """Copy the install trees into the container's writable layer, then enable and start the server.

        On overlayfs, renaming a directory that lives in an image layer fails with EXDEV ("Invalid
        cross-device link") unless the kernel has redirect_dir: the trees committed into the installed
        image would make every official-layout swap fail for a reason no real server (ext4, xfs) has.
        A tree copied in the container is wholly in the upper layer, where rename works as on a disk.
        """
        self.run(
            "set -e; for d in /opt/mattermost /var/opt/mattermost; do [ -d $d ] || continue; "
            'rm -rf "$d.e2e-copy"; cp -a "$d" "$d.e2e-copy"; rm -rf "$d"; mv "$d.e2e-copy" "$d"; done',
            timeout=120,
        )
        self.run(["systemctl", "enable", "--now", "mattermost.service"], timeout=180)

    # -- release mirror

    def start_mirror(self, root: str = "good") -> None:
        """Serve /srv/mirror/<root> on 127.0.0.1:8000 (a transient unit; replaces any running mirror)."""
        self.stop_mirror()
        self.run(
            [
                "systemd-run",
                "--unit=release-mirror",
                "--property=Restart=no",
                "--collect",
                "python3",
                f"{TOOLS_DIR}/mirror.py",
                "--root",
                f"{MIRROR_DIR}/{root}",
                "--bind",
                "127.0.0.1",
                "--port",
                str(MIRROR_PORT),
            ]
        )
        self.wait_http(f"{MIRROR_URL}/api/releases")

    def stop_mirror(self) -> None:
        self.run(
            "systemctl stop release-mirror.service 2>/dev/null; "
            "systemctl reset-failed release-mirror.service "
            "2>/dev/null; true"
        )

    def wait_http(self, url: str, timeout: float = 30) -> None:
        script = (
            "import sys, time, urllib.request\n"
            f"deadline = time.monotonic() + {timeout}\n"
            "while time.monotonic() < deadline:\n"
            "    try:\n"
            f"        urllib.request.urlopen({url!r}, timeout=2).read(); sys.exit(0)\n"
            "    except Exception:\n"
            "        time.sleep(0.2)\n"
            "sys.exit(1)\n"
        )
        if self.run(["python3", "-c", script], check=False, timeout=timeout + 15).returncode != 0:
            raise HarnessError(f"{self.name}: {url} did not answer within {timeout:.0f} s")

    # -- mmupgrade

    def install_mmupgrade(self, pyz: Path) -> None:
        self.write(MMUPGRADE, Path(pyz).read_bytes(), 0o755)

    def mmupgrade_argv(self, *args: str, mirror: bool = True) -> list[str]:
        argv = [MMUPGRADE, *args, "--json", "--yes", "--signing-key", SIGNING_KEY]
        if mirror:
            argv += ["--release-url", MIRROR_URL, "--releases-api", RELEASES_API]
        return argv

    def mmupgrade(self, *args: str, mirror: bool = True, timeout: float = 420) -> tuple[int, dict]:
        """Run mmupgrade with --json --yes (and the mirror and test key); return (exit code, JSON result).

        The raw stdout and stderr of the last run stay in self.last_stdout / self.last_stderr.
        """
        # coreutils timeout inside the container: a hung run is killed there, not just its docker client.
        argv = ["timeout", "--signal=KILL", str(int(timeout)), *self.mmupgrade_argv(*args, mirror=mirror)]
        started = time.monotonic()
        proc = self.run(argv, check=False, timeout=timeout + 30)
        self.last_seconds = time.monotonic() - started
        self.last_stdout, self.last_stderr = proc.stdout, proc.stderr
        return proc.returncode, self.parse_result(proc.stdout, proc.stderr, proc.returncode)

    @staticmethod
    def parse_result(stdout: str, stderr: str, rc: int) -> dict:
        try:
            result = json.loads(stdout)
        except ValueError as exc:
            raise AssertionError(
                f"mmupgrade (exit {rc}) did not print one JSON object on stdout:\n"
                f"stdout: {stdout[-3000:]!r}\n"
                f"stderr: {stderr[-3000:]}"
            ) from exc
        if not isinstance(result, dict):
            raise AssertionError(
                f"mmupgrade --json printed {type(result).__name__}, not an object: {stdout!r}"
            )
        return result

    def journal(self) -> dict | None:
        proc = self.run(["cat", JOURNAL], check=False)
        if proc.returncode != 0:
            return None
        try:
            return json.loads(proc.stdout)
        except ValueError:
            return None

    def mmupgrade_background(self, *args: str, mirror: bool = True, timeout: float = 420) -> Background:
        """Start mmupgrade without waiting; Background.wait() returns (exit code, JSON result)."""
        argv = ["timeout", "--signal=KILL", str(int(timeout)), *self.mmupgrade_argv(*args, mirror=mirror)]
        proc = subprocess.Popen(
            [DOCKER, "exec", self.name, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        return Background(self, proc, timeout + 30)

    def mmupgrade_killed_at(
        self, step: str | None, *args: str, delay: float = 0.0, on_rename: str = "", nth: int = 1,
        timeout: float = 420,
    ) -> dict:  # fmt: skip
        """Run mmupgrade and SIGKILL it (killer.py): when the journal shows `step` started (plus delay),
        or on entering its nth rename(2) naming the path on_rename.

        Returns killer.py's report: {"killed", "rc", "seconds", "journal", "steps_seen"}.
        """
        where = ["--on-rename", on_rename, "--nth", str(nth)] if on_rename else ["--step", str(step)]
        argv = [
            "python3", f"{TOOLS_DIR}/killer.py", "--journal", JOURNAL, *where, "--delay", str(delay),
            "--timeout", str(int(timeout)), "--stdout", "/root/killed.out", "--stderr", "/root/killed.err",
            "--", *self.mmupgrade_argv(*args),
        ]  # fmt: skip
        proc = self.run(argv, timeout=timeout + 60)
        return json.loads(proc.stdout)

    def snapshot(self) -> dict:
        """What a refused run must leave exactly as it was."""
        config = (
            "/var/opt/mattermost/config/config.json"
            if self.layout == "versioned"
            else ("/opt/mattermost/config/config.json")
        )
        files = [config, "/etc/systemd/system/mattermost.service"]
        if self.layout == "versioned":
            files.append("/etc/mattermost/mattermost.env")
        return {
            "main_pid": self.run(
                ["systemctl", "show", "--property=MainPID", "--value", "mattermost"]
            ).stdout.strip(),
            "active": self.service_active(),
            "serving": self.version_serving(),
            "schema": self.schema_version(),
            "tree": self.run(
                "find /opt -maxdepth 3 -not -path '*/logs/*' -printf '%p %u:%g %m %y %l\\n' | sort"
            ).stdout.splitlines(),
            "files": {
                path: self.run(f"sha256sum {path}; stat -c '%U:%G %a' {path}").stdout for path in files
            },
        }

    # -- diagnostics

    def diagnostics(self) -> str:
        parts = [f"== container {self.name} ({self.layout} {self.installed})"]
        parts.append(self.run("systemctl --no-pager status mattermost 2>&1 | head -20", check=False).stdout)
        parts.append(self.journal_tail(lines=40))
        parts.append(self.run(f"cat {JOURNAL} 2>&1 | head -c 6000", check=False).stdout)
        parts.append(
            self.run("ls -la /opt /opt/mattermost /opt/mattermost/releases 2>&1", check=False).stdout
        )
        return "\n".join(parts)


class Background:
    """An mmupgrade run started with Host.mmupgrade_background."""

    def __init__(self, host: Host, proc: subprocess.Popen, timeout: float) -> None:
        self.host, self.proc, self.timeout = host, proc, timeout

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait(self) -> tuple[int, dict]:
        try:
            out, err = self.proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired as exc:
            self.proc.kill()
            raise HarnessError(f"background mmupgrade did not finish within {self.timeout:.0f} s") from exc
        stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
        self.host.last_stdout, self.host.last_stderr = stdout, stderr
        return self.proc.returncode, Host.parse_result(stdout, stderr, self.proc.returncode)


# ------------------------------------------------------------------------------------------ containers


class Bed:
    """Makes test containers and the images behind them; removes every container it started."""

    def __init__(self, session: str | None = None) -> None:
        self.session = session or uuid.uuid4().hex[:8]
        self.containers: list[str] = []
        self.session_images: list[str] = []
        self._counter = 0
        self.timings: dict[str, float] = {}
        self.notes: list[str] = []  # printed at the end of the session (e.g. what each SIGKILL rerun did)

    # -- containers

    def start(self, image: str, purpose: str, *, network: bool = False, booted: bool = True) -> Host:
        """A new container from image; booted=False: return once systemd answers (units may still start)."""
        self._counter += 1
        safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in purpose)[:40].strip("-")
        name = f"mme2e-{self.session}-{self._counter:02d}-{safe}"
        args = [
            "run",
            "--detach",
            "--name",
            name,
            "--hostname",
            "mmhost",
            "--label",
            f"{LABEL}={self.session}",
            *SYSTEMD_OPTIONS,
        ]
        if not network:
            args.append("--network=none")
        docker(*args, image, "/lib/systemd/systemd")
        self.containers.append(name)
        host = Host(name)
        host.wait_for_systemd(booted=booted)
        return host

    def remove(self, host: Host) -> None:
        docker("rm", "--force", "--volumes", host.name, check=False, timeout=120)
        if host.name in self.containers:
            self.containers.remove(host.name)

    def commit(self, host: Host, image: str, labels: Mapping[str, str]) -> None:
        """Stop the services cleanly and commit the container as image (then remove the container)."""
        host.run(
            "systemctl stop mattermost.service 2>/dev/null; systemctl stop postgresql.service; "
            "systemctl stop release-mirror.service 2>/dev/null; sync; true",
            timeout=180,
        )
        changes = []
        for key, value in labels.items():
            changes += ["--change", f"LABEL {key}={json.dumps(value)}"]
        docker("commit", *changes, host.name, image, timeout=600)
        self.remove(host)

    def cleanup(self) -> None:
        for name in list(self.containers):
            docker("rm", "--force", "--volumes", name, check=False, timeout=120)
        self.containers.clear()
        for image in self.session_images:
            docker("image", "rm", "--force", image, check=False, timeout=120)
        self.session_images.clear()

    # -- images

    def packages_image(self) -> str:
        """mmtest/e2e-packages:<hash>: the base image plus PostgreSQL, its client, gnupg and the locale."""
        base = image_id(BASE_IMAGE)
        if base is None:
            raise HarnessError(f"the base image {BASE_IMAGE} is missing: {BED_HINT}")
        recipe = hashlib.sha256(f"{PACKAGES_RECIPE};base={base}".encode()).hexdigest()
        image = f"{PACKAGES_REPO}:{recipe[:16]}"
        if image_label(image, "mmtest.e2e.recipe") == recipe:
            return image
        started = time.monotonic()
        # The only container with a network: apt-get reaches the Debian mirror the base image names.
        host = self.start(BASE_IMAGE, "packages", network=True)
        try:
            host.run(
                "set -e; export DEBIAN_FRONTEND=noninteractive; apt-get update -qq; "
                "apt-get install -y -qq --no-install-recommends locales >/dev/null; "
                "sed -i 's/^# *en_US.UTF-8 UTF-8/en_US.UTF-8 UTF-8/' /etc/locale.gen; locale-gen >/dev/null; "
                f"apt-get install -y -qq --no-install-recommends {' '.join(PACKAGES)} >/dev/null; "
                "apt-get clean; rm -rf /var/lib/apt/lists/*; systemctl enable postgresql.service",
                timeout=900,
            )
            host.write("/etc/postgresql/15/main/conf.d/e2e-speed.conf", POSTGRES_TUNING)
            self.commit(host, image, {"mmtest.e2e.recipe": recipe})
        finally:
            self.remove(host)
        # Images of older recipes are of no use any more (removal fails harmlessly for one still in use).
        listed = docker("image", "ls", PACKAGES_REPO, "--format", "{{.Repository}}:{{.Tag}}", check=False)
        for old in listed.stdout.decode().split():
            if old != image:
                docker("image", "rm", old, check=False)
        self.timings["packages image"] = time.monotonic() - started
        return image

    def staged_image(self, files: Sequence[tuple[str, bytes, int]], db_password: str) -> str:
        """The packages image plus the database and user and the session's files (mirrors, tools, keys)."""
        started = time.monotonic()
        image = f"{STAGED_REPO}:{self.session}"
        host = self.start(self.packages_image(), "staged")
        try:
            host.wait_for_postgres()
            sql = (
                f"CREATE DATABASE {DB_NAME} WITH ENCODING 'UTF8' LC_COLLATE='en_US.UTF-8' "
                "LC_CTYPE='en_US.UTF-8' TEMPLATE=template0;\n"
                f"CREATE USER {DB_USER} WITH PASSWORD '{db_password}';\n"
                f"GRANT ALL PRIVILEGES ON DATABASE {DB_NAME} to {DB_USER};\n"
                f"ALTER DATABASE {DB_NAME} OWNER TO {DB_USER};\n"
                f"\\c {DB_NAME}\n"
                f"ALTER SCHEMA public OWNER TO {DB_USER};\n"
                f"GRANT USAGE, CREATE ON SCHEMA public TO {DB_USER};\n"
            )
            host.run(["runuser", "-u", "postgres", "--", "psql", "-q", "-v", "ON_ERROR_STOP=1"], input=sql)
            host.put(files)
            self.session_images.append(image)
            self.commit(host, image, {LABEL: self.session})
        finally:
            self.remove(host)
        self.timings["staged image"] = time.monotonic() - started
        return image

    def installed_image(self, staged: str, layout: str, version: str, edition: str, db_password: str) -> str:
        """The staged image with Mattermost <version> installed in <layout>, running, with smoke test data."""
        started = time.monotonic()
        image = f"{INSTALLED_REPO}:{self.session}-{layout}-{version}-{edition}"
        host = self.start(staged, f"install-{layout}-{version}")
        host.db_password = db_password
        try:
            host.wait_for_postgres()
            install(host, layout, version, edition)
            host.smoke_run()
            host.smoke_verify()
            # Test containers move the trees to the writable layer before they start the server (materialize).
            host.run(["systemctl", "disable", "mattermost.service"])
            self.session_images.append(image)
            self.commit(host, image, {LABEL: self.session})
        finally:
            self.remove(host)
        self.timings[f"installed image {layout} {version}"] = time.monotonic() - started
        return image


# ----------------------------------------------------------------------------------------- installers


def install(
    host: Host, layout: str, version: str, edition: str = "enterprise", mirror_root: str = "good"
) -> None:
    """Install Mattermost from /srv/mirror/<root>/<version>/ in the given layout, start it, wait for ping."""
    tarball = f"{MIRROR_DIR}/{mirror_root}/{version}/{tarball_name(version, edition)}"
    if layout == "official":
        install_official(host, tarball)
    elif layout == "versioned":
        install_versioned(host, tarball, f"{version}-{edition}")
    else:
        raise ValueError(f"unknown layout {layout!r}")
    host.layout, host.installed = layout, version
    host.run(["systemctl", "daemon-reload"])
    host.run(["systemctl", "enable", "--now", "mattermost.service"], timeout=180)
    host.wait_serving(version)


def install_official(host: Host, tarball: str) -> None:
    """The tarball install guide (deploy-tar "Manual Install"), step by step."""
    host.run(
        "set -e; cd /tmp; tar -xzf "
        + shlex.quote(tarball)
        + "; mv mattermost /opt; mkdir /opt/mattermost/data; "
        "id mattermost >/dev/null 2>&1 || useradd --system --user-group mattermost; "
        "chown -R mattermost:mattermost /opt/mattermost; chmod -R g+w /opt/mattermost"
    )
    # config.json edits of the guide: driver, data source, site URL (the server adds the rest on start).
    script = (
        "import json, os, sys\n"
        "path = '/opt/mattermost/config/config.json'\n"
        "config = json.load(open(path))\n"
        "config['SqlSettings']['DriverName'] = 'postgres'\n"
        "config['SqlSettings']['DataSource'] = sys.stdin.read()\n"
        f"config['ServiceSettings']['SiteURL'] = {MM_URL!r}\n"
        "with open(path, 'w') as f:\n"
        "    json.dump(config, f, indent=2); f.write('\\n')\n"
    )
    host.run(["python3", "-c", script], input=data_source(host.db_password))
    host.write("/etc/systemd/system/mattermost.service", OFFICIAL_UNIT)


def install_versioned(host: Host, tarball: str, release: str) -> None:
    """What roles/mattermost does (docs/dev/layout.md), written out as shell."""
    host.run(
        "set -e; "
        "getent group mattermost >/dev/null || groupadd --system mattermost; "
        "id mattermost >/dev/null 2>&1 || useradd --system --gid mattermost --shell /usr/sbin/nologin "
        "--home-dir /var/opt/mattermost --no-create-home --comment 'Mattermost server' mattermost; "
        "install -d -o root -g root -m 0755 /opt/mattermost /opt/mattermost/releases; "
        "install -d -o mattermost -g mattermost -m 0750 /var/opt/mattermost /var/opt/mattermost/config "
        "/var/opt/mattermost/data /var/opt/mattermost/plugins /var/opt/mattermost/client "
        "/var/opt/mattermost/client/plugins /var/opt/mattermost/logs; "
        "install -d -o root -g mattermost -m 0750 /etc/mattermost; "
        f"unpack=/opt/mattermost/releases/.{release}.unpacking; rm -rf $unpack; install -d -m 0700 $unpack; "
        f"tar -xzf {shlex.quote(tarball)} --no-same-owner -C $unpack; chmod -R go-w $unpack/mattermost; "
        f"mv --no-target-directory $unpack/mattermost /opt/mattermost/releases/{release}; rmdir $unpack; "
        f"ln -sfn releases/{release} /opt/mattermost/current; "
        f"install -o mattermost -g mattermost -m 0600 /opt/mattermost/releases/{release}/config/config.json "
        "/var/opt/mattermost/config/config.json"
    )
    host.write("/etc/systemd/system/mattermost.service", VERSIONED_UNIT)
    host.write(
        "/etc/mattermost/mattermost.env", versioned_env_file(host.db_password), 0o640, "root:mattermost"
    )
    host.write("/etc/mattermost/release-signing-key.asc", host.read(SIGNING_KEY))
