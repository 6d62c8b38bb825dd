"""Release verification: GPG signature against a one-key keyring, pinned fingerprint, pinned SHA-256."""

from __future__ import annotations

import http.server
import shutil
import threading
from pathlib import Path

import pytest

from mmupgrade import verify
from mmupgrade.context import Context, Options, Runtime
from mmupgrade.errors import Refused
from mmupgrade.preflight import _check_signing_key
from mmupgrade.verify import Keyring, VerifyError, normalize_fingerprint, resolve_signing_key, verify_sha256

from .conftest import ReleaseFactory


def test_good_signature(releases: ReleaseFactory) -> None:
    release = releases.get("11.10.0")
    with Keyring(release.signing_key) as keyring:
        assert keyring.fingerprints == [release.fingerprint]
        keyring.check_pin(release.fingerprint)
        assert (
            keyring.verify(release.tarball, release.signature, pinned=release.fingerprint)
            == release.fingerprint
        )


def test_tampered_tarball(releases: ReleaseFactory, tmp_path: Path) -> None:
    release = releases.get("11.10.0")
    tampered = tmp_path / release.name
    data = bytearray(release.tarball.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    with (
        Keyring(release.signing_key) as keyring,
        pytest.raises(VerifyError, match="does not match its signature"),
    ):
        keyring.verify(tampered, release.signature)


def test_signature_by_another_key(releases: ReleaseFactory) -> None:
    trusted = releases.get("11.10.0")
    foreign = releases.get("11.10.0", root="other")
    assert foreign.fingerprint != trusted.fingerprint
    with Keyring(trusted.signing_key) as keyring, pytest.raises(VerifyError, match="signed by a key other"):
        keyring.verify(foreign.tarball, foreign.signature)


def test_pinned_fingerprint_mismatch(releases: ReleaseFactory) -> None:
    release = releases.get("11.10.0")
    other = releases.get("11.10.0", root="other")
    with Keyring(release.signing_key) as keyring:
        with pytest.raises(VerifyError, match="releases are not trusted until the key and the pin agree"):
            keyring.check_pin(other.fingerprint)
        with pytest.raises(VerifyError, match="not by the pinned key"):
            keyring.verify(release.tarball, release.signature, pinned=other.fingerprint)


def test_missing_or_garbage_signature(releases: ReleaseFactory, tmp_path: Path) -> None:
    release = releases.get("11.10.0")
    garbage = tmp_path / "garbage.sig"
    garbage.write_bytes(b"not a signature")
    with Keyring(release.signing_key) as keyring:
        with pytest.raises(VerifyError, match="no signature"):
            keyring.verify(release.tarball, tmp_path / "absent.sig")
        with pytest.raises(VerifyError, match="GPG signature check failed"):
            keyring.verify(release.tarball, garbage)


def test_sha256(releases: ReleaseFactory) -> None:
    release = releases.get("11.10.0")
    verify_sha256(release.tarball, release.sha256.upper())
    with pytest.raises(VerifyError, match="SHA-256 mismatch"):
        verify_sha256(release.tarball, "0" * 64)


def test_key_file_without_a_key(tmp_path: Path) -> None:
    empty = tmp_path / "empty.asc"
    empty.write_text("nothing here\n")
    with pytest.raises(VerifyError):
        Keyring(empty).__enter__()


def test_fingerprint_normalisation() -> None:
    spaced = "A1B3 1D46 F0F3 A10B 02CF  2D44 F8F2 C317 4477 4B28"
    assert normalize_fingerprint(spaced.lower()) == "A1B31D46F0F3A10B02CF2D44F8F2C31744774B28"
    with pytest.raises(ValueError, match="not a key fingerprint"):
        normalize_fingerprint("F8F2C31744774B28")  # a long key id is not a fingerprint


def test_key_resolution_order_and_cache(
    releases: ReleaseFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = releases.get("11.10.0")
    monkeypatch.setattr(verify, "ROLE_KEY_FILE", tmp_path / "etc" / "release-signing-key.asc")
    # 1. --signing-key wins.
    assert resolve_signing_key(release.signing_key, tmp_path / "state")[0] == release.signing_key
    with pytest.raises(VerifyError, match="does not exist"):
        resolve_signing_key(tmp_path / "missing.asc", tmp_path / "state")
    # 2. No key at hand: fetched once from the published URL (here a loopback server), then cached.
    served = []

    class KeyHandler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.append(self.path)
            body = release.signing_key.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), KeyHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/pubkey.gpg"
        key, origin = resolve_signing_key(None, tmp_path / "state", url)
        assert key == tmp_path / "state" / "release-signing-key.asc"
        assert "fetched now" in origin
        key_again, origin_again = resolve_signing_key(None, tmp_path / "state", url)
        assert key_again == key and "fetched earlier" in origin_again
        assert served == ["/pubkey.gpg"]
    finally:
        server.shutdown()
        server.server_close()
    # 3. The key the mattermost role installed is preferred over the cache.
    verify.ROLE_KEY_FILE.parent.mkdir(parents=True)
    shutil.copy(release.signing_key, verify.ROLE_KEY_FILE)
    assert resolve_signing_key(None, tmp_path / "state", url)[0] == verify.ROLE_KEY_FILE


def test_a_pin_is_remembered_and_enforced_later(releases: ReleaseFactory, tmp_path: Path) -> None:
    good, other = releases.get("11.10.0"), releases.get("11.10.0", root="other")

    def check(key: Path, pin: str | None, dry_run: bool = False) -> str | None:
        options = Options(state_dir=tmp_path, signing_key=key, signing_key_fingerprint=pin, dry_run=dry_run)
        return _check_signing_key(Context(options, Runtime()))[3]

    assert check(good.signing_key, None) is None
    check(good.signing_key, good.fingerprint, dry_run=True)
    assert not (tmp_path / "signing-key.fingerprint").exists()  # a dry run remembers nothing
    assert check(good.signing_key, good.fingerprint.lower()) == good.fingerprint
    assert (tmp_path / "signing-key.fingerprint").read_text().strip() == good.fingerprint
    assert check(good.signing_key, None) == good.fingerprint  # enforced without the flag
    with pytest.raises(Refused, match="pinned by an earlier --signing-key-fingerprint"):
        check(other.signing_key, None)
    assert check(other.signing_key, other.fingerprint) == other.fingerprint  # re-pinned on purpose
