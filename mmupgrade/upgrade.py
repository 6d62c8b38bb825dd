"""The upgrade, step by step, each step journaled before and after.

target -> preflight -> download -> verify -> [data backup] -> stage -> stop -> backup -> swap -> start ->
healthy? -> commit, or roll back. Until the service is stopped a failure changes nothing (exit 1); after
that, any failure rolls back (exit 3, or 4 if even that fails). The database is dumped after the stop,
so a restore loses nothing that was written before the switch.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from .backup import BackupError, BackupWriter, backup_name
from .commit import commit
from .context import Context
from .download import DownloadError, Validator, download
from .errors import Refused, RolledBack
from .extract import ExtractError
from .health import ping_url, wait_healthy
from .hostfs import HostError, restore_selinux_contexts
from .installation import OFFICIAL, Installation
from .journal import ABANDONED
from .output import result
from .preflight import Preflight, describe_plan, run_preflight
from .recovery import recover
from .releases import ReleaseListError, newest_version, parse_tarball_name
from .rollback import RECOVERABLE, roll_back
from .stage import StageError, discard_staged, plan_paths, stage_release
from .swap import SwapPlan, swap_in
from .verify import Keyring, VerifyError, verify_sha256
from .versions import Version, check_upgrade_path


def resolve_target(ctx: Context, installation: Installation) -> tuple[Version, str]:
    """(version, edition) to upgrade to, from --to, --tarball or the release list."""
    options = ctx.options
    edition = installation.edition if options.edition == "auto" else options.edition
    from_name = parse_tarball_name(options.tarball.name) if options.tarball else None
    if from_name is not None and from_name[1] != edition:
        message = f"--tarball {options.tarball.name} is the {from_name[1]} edition, not {edition}"
        if options.edition == "auto":
            message += f": pass --edition {from_name[1]} to switch editions"
        raise Refused(message)
    if options.to:
        target = _parse_version(options.to)
        if from_name is not None and from_name[0] != target:
            raise Refused(f"--tarball {options.tarball.name} is version {from_name[0]}, not --to {target}")
        return target, edition
    if from_name is not None:
        return from_name[0], edition
    if options.tarball is not None:
        raise Refused(f"cannot tell the version of {options.tarball.name} from its name: add --to X.Y.Z")
    try:
        return newest_version(options.releases_api), edition
    except ReleaseListError as exc:
        raise Refused(str(exc)) from None


def _parse_version(text: str) -> Version:
    try:
        return Version.parse(text)
    except ValueError as exc:
        raise Refused(str(exc)) from None


def run_upgrade(ctx: Context) -> dict[str, Any]:
    recovered = recover(ctx)
    if recovered is not None:
        return recovered
    installation = ctx.discover()
    target, edition = resolve_target(ctx, installation)
    current = installation.version
    ctx.from_version, ctx.to_version = current, target
    if target == current and edition == installation.edition:
        return result(
            "up-to-date", 0, f"Mattermost {current} ({edition}) is installed: nothing to do.", current, target
        )
    check_upgrade_path(current, target)
    pre = run_preflight(ctx, installation, target, edition)
    lines = describe_plan(ctx, installation, target, edition, pre)
    ctx.say("Plan (dry run: nothing will be changed):" if ctx.options.dry_run else "Plan:")
    for line in lines:
        ctx.say(f"  - {line}")
    if ctx.options.dry_run:
        return result(
            "update-available",
            0,
            "Dry run: preflight passed; nothing was changed.",
            current,
            target,
            dry_run=True,
            plan=lines,
        )
    # Asked only when someone can answer; unattended runs (Ansible, cron) go ahead as told.
    wants_confirmation = not ctx.options.yes and ctx.reporter.interactive()
    if wants_confirmation and not ctx.reporter.confirm(f"Upgrade Mattermost {current} to {target}?"):
        raise Refused("upgrade cancelled; nothing was changed")
    return Upgrade(ctx, installation, target, edition, pre).run()


class Upgrade:
    def __init__(
        self, ctx: Context, installation: Installation, target: Version, edition: str, pre: Preflight
    ) -> None:
        self.ctx = ctx
        self.installation = installation
        self.target = target
        self.edition = edition
        self.pre = pre
        self.plan: SwapPlan = plan_paths(installation, target, edition)
        self.downloads = ctx.options.state_dir / "downloads" / f"{target}-{edition}"
        self.backup = BackupWriter(
            ctx.options.backup_dir, backup_name(str(installation.version), str(target))
        )
        self.journal = ctx.journal

    @property
    def old(self) -> Version:
        return self.installation.version

    def run(self) -> dict[str, Any]:
        self.journal.begin(
            {
                "action": "upgrade",
                "from": str(self.old),
                "from_edition": self.installation.edition,
                "to": str(self.target),
                "edition": self.edition,
                "layout": self.installation.layout,
                "root": str(self.installation.root),
                "unit": self.ctx.service.name,
                "plan": self.plan.to_dict(),
                "downloads": str(self.downloads),
                "backup_partial": str(self.backup.partial),
                "health_timeout": self.ctx.options.health_timeout,
            }
        )
        try:
            tarball = self._step("download", self.fetch)
            self._step("verify", lambda: self.verify(tarball))
            if self.ctx.options.backup_data:
                self._step("backup-data", self.backup_data)
            self._step("stage", lambda: self.stage(tarball))
        except KeyboardInterrupt:
            self._abandon("interrupted before the server was stopped")
            raise
        except (
            DownloadError,
            VerifyError,
            ExtractError,
            StageError,
            BackupError,
            HostError,
            OSError,
            Refused,
        ) as exc:
            message = self.ctx.reporter.redact(str(exc))
            self._abandon(message)
            raise Refused(f"{message}. Nothing was changed on the server.") from None

        try:
            self._step("stop", self.ctx.service.stop)
            self._step("backup", self.backup_database)
            self._step("swap", self.swap)
            self._step("start", self.ctx.service.start)
            self._step("health", self.wait_until_healthy)
        except RECOVERABLE as exc:
            return self.fail(self.ctx.reporter.redact(str(exc)))
        commit(self.ctx, self.journal.record)
        backup = self.journal.record.get("backup")
        return result(
            "upgraded",
            0,
            f"Upgraded Mattermost {self.old} to {self.target}; it is serving. Backup: {backup}. "
            f"Undo with: mmupgrade --rollback",
            self.old,
            self.target,
            backup=backup,
        )

    def _step(self, name: str, action: Any) -> Any:
        self.journal.started(name)
        value = action()
        self.journal.done(name)
        return value

    def _abandon(self, why: str) -> None:
        """Undo staging and a partial backup; keep downloads, so a later attempt resumes."""
        try:
            discard_staged(self.plan)
        except (OSError, StageError) as exc:
            self.ctx.reporter.warn(f"could not remove {self.plan.staged}: {exc}")
        self.backup.discard()
        self.journal.finish(ABANDONED, why)

    # --- steps --------------------------------------------------------------------------------------

    def fetch(self) -> Path:
        self.downloads.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.downloads.parent, 0o700)
        dest = self.downloads / self.pre.tarball_name
        signature = dest.with_name(dest.name + ".sig")
        if self.pre.local_tarball is not None:
            # Copied into the root-only directory, so the file checked is the file unpacked.
            shutil.copyfile(self.pre.local_tarball, dest)
            shutil.copyfile(f"{self.pre.local_tarball}.sig", signature)
            return dest
        # An earlier, complete download is reused if the server says it is unchanged (and is verified
        # again either way); a partial one is resumed.
        download(self.pre.tarball_url or "", dest, progress=self.ctx.progress)
        download(self.pre.signature_url or "", signature)
        return dest

    def verify(self, tarball: Path) -> None:
        signature = tarball.with_name(tarball.name + ".sig")
        try:
            if self.ctx.options.sha256:
                verify_sha256(tarball, self.ctx.options.sha256)
            with Keyring(self.pre.key_file) as keyring:
                signer = keyring.verify(tarball, signature, self.pre.pinned)
        except VerifyError:
            # A file that failed verification is useless; the next attempt downloads it again.
            for path in (tarball, signature):
                path.unlink(missing_ok=True)
                Validator(path).remove()
            raise
        self.ctx.say(
            f"verified {tarball.name}: signed by {signer}"
            + (", SHA-256 as pinned" if self.ctx.options.sha256 else "")
        )

    def backup_data(self) -> None:
        data_dir = self.installation.settings.data_dir
        if data_dir is None or not data_dir.is_dir():
            self.ctx.say(
                "no local data directory to back up (FileSettings.DriverName is not local, or it is missing)"
            )
            return
        self.backup.open()
        self.backup.add_data(data_dir, progress=self.ctx.progress)

    def stage(self, tarball: Path) -> None:
        self.plan = stage_release(tarball, self.installation, self.plan, self.target, self.edition)
        self.journal.update(plan=self.plan.to_dict())
        self.ctx.say(f"staged {self.target} at {self.plan.staged}")

    def backup_database(self) -> None:
        installation = self.installation
        writer = self.backup
        writer.open()
        database = self.ctx.database(installation)
        schema = database.schema_version()
        writer.note(
            **{
                "from": str(self.old),
                "to": str(self.target),
                "layout": installation.layout,
                "root": str(installation.root),
                "schema_version": schema,
                "database": database.source.database,
                "config_in_database": installation.settings.config_database is not None,
            }
        )
        writer.add_database(database, progress=self.ctx.progress)
        config_database = self.ctx.config_database(installation)
        if config_database is not None:
            writer.add_database(config_database, name="config-database.dump")
        config_file = installation.settings.config_file
        if config_file is not None and config_file.is_file():
            owner = config_file.stat()
            writer.note(
                config_owner={"uid": owner.st_uid, "gid": owner.st_gid, "mode": owner.st_mode & 0o7777}
            )
            writer.add_file(config_file, "config.json")
        for env_file in installation.environment_files:
            writer.add_file(env_file, f"env/{env_file.name}")
        for index, unit_file in enumerate(installation.unit.files()):
            writer.add_file(unit_file, f"unit/{index:02d}-{unit_file.name}")
        complete = writer.complete()
        self.journal.update(backup=str(complete.path), schema_before=schema)
        self.ctx.say(f"backup complete: {complete.path} (schema version {schema})")

    def swap(self) -> None:
        swap_in(self.plan)
        if self.plan.layout == OFFICIAL:
            root = Path(self.plan.root)
            restore_selinux_contexts(
                [root / name for name in os.listdir(root) if name not in self.plan.preserved]
            )
        self.ctx.say(f"switched to {self.target}")

    def wait_until_healthy(self) -> None:
        url = ping_url(self.installation.settings)
        self.ctx.say(
            f"waiting for {self.target} to answer healthy on {url} (up to "
            f"{self.ctx.options.health_timeout:g} s)"
        )
        wait_healthy(
            url, self.target, self.ctx.options.health_timeout, self.ctx.service, on_wait=self.ctx.say
        )

    def fail(self, cause: str) -> dict[str, Any]:
        """Roll back after a failure once the service was touched: exit 3, or 4 if that fails too."""
        self.ctx.reporter.error(f"{cause}; rolling back to {self.old}")
        summary = roll_back(self.ctx, self.journal.record, cause)  # raises NeedsAttention if it cannot
        raise RolledBack(f"{cause}; {summary}.")
