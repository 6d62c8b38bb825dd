"""The stand-in's throwaway release signing key: one per output ROOT, made on first use.

The real release site publishes a detached binary GPG signature next to every tarball. The stand-in
does the same with a key generated here, so the product's signature check runs unchanged; tests hand
it `ROOT/signing-key.asc` the way an air-gapped site hands over its mirror's key.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

KEY_USER_ID = "Mattermost Stand-in Test Release Signing <standin@invalid>"
GNUPG_DIR = "gnupg"
PUBLIC_KEY_FILE = "signing-key.asc"
FINGERPRINT_FILE = "signing-key.fingerprint"
_LOCK_FILE = ".signing.lock"


class SigningError(Exception):
    """gpg is missing or refused to make or use the stand-in key."""


class Signer:
    """Signs files with the ROOT's key. Use as a context manager: it stops the gpg-agent on exit."""

    def __init__(self, root: Path, gpg: str = "gpg") -> None:
        self.root = Path(root)
        self.gnupg_home = self.root / GNUPG_DIR
        self._gpg = shutil.which(gpg) or gpg
        self._link_dir: str | None = None
        self.fingerprint = ""

    # gpg-agent puts its sockets in the home directory and fails when that path is longer than a
    # unix socket name may be (pytest's tmp_path easily is), so gpg is pointed at a short symlink.
    def __enter__(self) -> Signer:
        self.root.mkdir(parents=True, exist_ok=True)
        self._link_dir = tempfile.mkdtemp(prefix="standin-gpg-")
        os.symlink(self.gnupg_home.resolve(), os.path.join(self._link_dir, "h"))
        try:
            with _locked(self.root / _LOCK_FILE):
                self.fingerprint = self._ensure_key()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._link_dir is None:
            return
        if self.gnupg_home.is_dir():
            subprocess.run(
                ["gpgconf", "--homedir", self._home, "--kill", "gpg-agent"],
                capture_output=True,
                check=False,
            )
        shutil.rmtree(self._link_dir, ignore_errors=True)
        self._link_dir = None

    @property
    def _home(self) -> str:
        assert self._link_dir is not None, "Signer used outside its with-block"
        return os.path.join(self._link_dir, "h")

    def _run(self, *args: str, stdin: bytes | None = None) -> bytes:
        cmd = [
            self._gpg,
            "--homedir",
            self._home,
            "--batch",
            "--no-tty",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            *args,
        ]
        try:
            proc = subprocess.run(cmd, input=stdin, capture_output=True, check=False)
        except FileNotFoundError as exc:
            raise SigningError(f"gpg not found ({self._gpg}); install the gnupg package") from exc
        if proc.returncode != 0:
            detail = proc.stderr.decode(errors="replace").strip().splitlines()
            raise SigningError(f"gpg {args[0]} failed: {detail[-1] if detail else proc.returncode}")
        return proc.stdout

    def _secret_fingerprint(self) -> str:
        out = self._run("--with-colons", "--list-secret-keys").decode()
        for line in out.splitlines():
            fields = line.split(":")
            if fields[0] == "fpr":
                return fields[9]
        return ""

    def _ensure_key(self) -> str:
        self.gnupg_home.mkdir(mode=0o700, exist_ok=True)
        self.gnupg_home.chmod(0o700)
        fingerprint = self._secret_fingerprint()
        if not fingerprint:
            self._run("--quick-gen-key", KEY_USER_ID, "ed25519", "sign", "never")
            fingerprint = self._secret_fingerprint()
            if not fingerprint:
                raise SigningError(f"gpg made no key in {self.gnupg_home}")
        armored = self._run("--armor", "--export", fingerprint)
        _write_if_changed(self.root / PUBLIC_KEY_FILE, armored)
        _write_if_changed(self.root / FINGERPRINT_FILE, (fingerprint + "\n").encode())
        return fingerprint

    def sign_bytes(self, data: bytes) -> bytes:
        """Detached binary signature of data."""
        return self._run("--local-user", self.fingerprint, "--output", "-", "--detach-sign", stdin=data)

    def sign_file(self, path: Path, signature: Path) -> None:
        """Write a detached binary signature of path to signature (atomically)."""
        # A dot name: the mirror does not serve dot files, so nobody downloads a half-written signature.
        partial = signature.with_name(f".{signature.name}.partial")
        self._run(
            "--yes", "--local-user", self.fingerprint, "--output", str(partial), "--detach-sign", str(path)
        )
        partial.replace(signature)


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    # Two builds into the same ROOT at once must not both generate a key.
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_if_changed(path: Path, data: bytes) -> None:
    if path.exists() and path.read_bytes() == data:
        return
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)
