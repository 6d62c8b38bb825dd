"""Is this tarball the release Mattermost signed? SHA-256 (when pinned) and the GPG signature.

gpgv trusts exactly the keys in the keyring it is given; the keyring is built here from the one
signing key, in a throwaway GnuPG home, so no other key on the host can vouch for a release.

Mattermost publishes its key at https://deb.packages.mattermost.com/pubkey.gpg and no fingerprint
(facts section 3, TESTBED section 5). So the default is honest: use the key the mattermost role cached
(/etc/mattermost/release-signing-key.asc), else fetch the published key once and cache it, and always
print the fingerprint; --signing-key-fingerprint pins it and is then enforced on every verification.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from .net import NetError, open_url

DEFAULT_KEY_URL = "https://deb.packages.mattermost.com/pubkey.gpg"
ROLE_KEY_FILE = Path("/etc/mattermost/release-signing-key.asc")
CACHED_KEY_NAME = "release-signing-key.asc"
_FINGERPRINT = re.compile(r"[0-9A-F]{40}|[0-9A-F]{64}")


class VerifyError(Exception):
    pass


def normalize_fingerprint(text: str) -> str:
    """Upper-case hex without spaces; 40 (v4) or 64 (v5) digits."""
    cleaned = re.sub(r"\s", "", text).upper()
    if cleaned.startswith("0X"):
        cleaned = cleaned[2:]
    if not _FINGERPRINT.fullmatch(cleaned):
        raise ValueError(f"{text!r} is not a key fingerprint (40 or 64 hex digits)")
    return cleaned


def sha256_of(path: Path, chunk_size: int = 1024 * 1024) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str) -> None:
    actual = sha256_of(path)
    if actual != expected.strip().lower():
        raise VerifyError(
            f"SHA-256 mismatch for {path.name}: the file has {actual}, --sha256 expects "
            f"{expected.strip().lower()}"
        )


def resolve_signing_key(
    option: Path | None, state_dir: Path, key_url: str = DEFAULT_KEY_URL
) -> tuple[Path, str]:
    """(key file, where it came from). Fetches the published key once when no key is at hand."""
    if option is not None:
        if not option.is_file():
            raise VerifyError(f"signing key {option} does not exist")
        return option, f"{option} (--signing-key)"
    if ROLE_KEY_FILE.is_file():
        return ROLE_KEY_FILE, f"{ROLE_KEY_FILE} (installed by the mattermost role)"
    cached = state_dir / CACHED_KEY_NAME
    if cached.is_file():
        return cached, f"{cached} (fetched earlier from {key_url})"
    fetch_key(key_url, cached)
    return cached, f"{cached} (fetched now from {key_url}; compare its fingerprint with one you trust)"


def fetch_key(url: str, dest: Path) -> None:
    try:
        response = open_url(url, timeout=60)
    except NetError as exc:
        raise VerifyError(f"cannot fetch the release signing key: {exc}; pass --signing-key FILE") from None
    with response:
        status = getattr(response, "status", None) or response.getcode()
        if status != 200:
            raise VerifyError(f"cannot fetch the release signing key: {url} answered HTTP {status}")
        data = response.read(1024 * 1024)
    # Armored, or a binary OpenPGP packet (its first byte has the high bit set).
    if b"-----BEGIN PGP PUBLIC KEY BLOCK-----" not in data and not (data and data[0] & 0x80):
        raise VerifyError(f"{url} did not return an OpenPGP public key")
    dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = dest.with_name(dest.name + ".tmp")
    temp.write_bytes(data)
    os.chmod(temp, 0o644)
    os.replace(temp, dest)


class Keyring:
    """A GnuPG home holding only the given key, plus that key exported as the keyring gpgv reads.

    Use as a context manager; the home is deleted on exit.
    """

    def __init__(self, key_file: Path) -> None:
        self.key_file = key_file
        self.home: Path | None = None
        self.keyring: Path | None = None
        self.fingerprints: list[str] = []

    def __enter__(self) -> Keyring:
        self.home = Path(tempfile.mkdtemp(prefix="mmupgrade-gnupg-"))
        try:
            self.keyring = self.home / "release-keyring.gpg"
            _gpg(self.home, "--import", str(self.key_file))
            _gpg(self.home, "--export", "--output", str(self.keyring))
            listing = _gpg(self.home, "--with-colons", "--fingerprint", "--list-keys")
            self.fingerprints = primary_fingerprints(listing)
            if not self.fingerprints:
                raise VerifyError(f"{self.key_file} holds no OpenPGP public key")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)
            self.home = None

    def check_pin(self, pinned: str | None) -> None:
        if pinned and pinned not in self.fingerprints:
            raise VerifyError(
                f"the signing key {self.key_file} has fingerprint {', '.join(self.fingerprints)}, not the "
                f"pinned {pinned}: releases are not trusted until the key and the pin agree"
            )

    def verify(self, tarball: Path, signature: Path, pinned: str | None = None) -> str:
        """Check the detached signature; returns the fingerprint of the primary key that made it."""
        if self.home is None or self.keyring is None:
            raise RuntimeError("Keyring used outside its with-block")
        if not signature.is_file():
            raise VerifyError(f"no signature {signature.name} next to {tarball.name}")
        proc = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [  # noqa: S607 - gpgv from PATH, like every other host tool
                "gpgv",
                "--homedir",
                str(self.home),
                "--keyring",
                str(self.keyring),
                "--status-fd",
                "1",
                str(signature),
                str(tarball),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        signers = re.findall(r"^\[GNUPG:\] VALIDSIG .* ([0-9A-F]{40,64})$", proc.stdout, re.MULTILINE)
        if proc.returncode != 0 or not signers:
            raise VerifyError(
                f"GPG signature check failed for {tarball.name}: {_gpgv_summary(proc.stdout, proc.stderr)}"
            )
        for signer in signers:
            if pinned and signer != pinned:
                raise VerifyError(f"{tarball.name} is signed by {signer}, not by the pinned key {pinned}")
        return signers[0]


def primary_fingerprints(colons: str) -> list[str]:
    """Fingerprints of primary keys in `gpg --with-colons --list-keys` output (the fpr after each pub)."""
    result = []
    expect_primary = False
    for line in colons.splitlines():
        fields = line.split(":")
        if fields[0] == "pub":
            expect_primary = True
        elif fields[0] == "fpr" and expect_primary:
            result.append(fields[9])
            expect_primary = False
        elif fields[0] == "sub":
            expect_primary = False
    return result


def _gpgv_summary(status: str, stderr: str) -> str:
    wanted = ("GOODSIG", "BADSIG", "ERRSIG", "NO_PUBKEY", "EXPKEYSIG", "REVKEYSIG", "EXPSIG", "NODATA")
    lines = [
        line.removeprefix("[GNUPG:] ")
        for line in status.splitlines()
        if line.startswith("[GNUPG:] ") and line.split()[1] in wanted
    ]
    explanation = {
        "BADSIG": "the tarball does not match its signature (corrupted or tampered)",
        "NO_PUBKEY": "it was signed by a key other than the release signing key",
        "ERRSIG": "the signature could not be checked",
        "NODATA": "the signature file is not an OpenPGP signature",
        "EXPKEYSIG": "the signing key has expired",
        "REVKEYSIG": "the signing key was revoked",
    }
    reasons = [text for word, text in explanation.items() if any(line.split()[0] == word for line in lines)]
    detail = "; ".join(lines) or (stderr.strip().splitlines() or ["gpgv failed"])[-1]
    return f"{', '.join(reasons) or 'no valid signature'} ({detail})"


def _gpg(home: Path, *args: str) -> str:
    try:
        proc = subprocess.run(  # noqa: S603 - fixed argv, no shell
            ["gpg", "--batch", "--no-options", "--no-autostart", "--homedir", str(home), *args],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        raise VerifyError(
            "gpg is not installed: install gnupg (apt-get install gnupg / dnf install gnupg2)"
        ) from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise VerifyError(f"gpg {args[0]} failed: {last}")
    return proc.stdout
