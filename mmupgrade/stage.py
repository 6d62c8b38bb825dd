"""Put the verified release next to the one in service, on the same filesystem, ready to switch.

Everything slow happens here, while the old version still serves: unpacking, ownership like the old
tree's, cap_net_bind_service when the old binary had it, SELinux labels, and a check that the staged
binary really is the target version and edition. Unpacking goes into a hidden sibling directory that
is renamed into place only when complete.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path

from .extract import extract_release
from .hostfs import chown_tree, has_net_bind_capability, restore_selinux_contexts, set_net_bind_capability
from .installation import OFFICIAL, Installation, read_binary_info
from .swap import SwapPlan, preserved_entries
from .versions import Version


class StageError(Exception):
    pass


def release_name(version: Version, edition: str) -> str:
    return f"{version}-{edition}"


def plan_paths(installation: Installation, target: Version, edition: str) -> SwapPlan:
    """Where the new release goes; decided before anything is written, so the journal can name it."""
    root = installation.root
    if installation.layout == OFFICIAL:
        previous = Path(f"{root}.previous-{installation.version}")
        if os.path.lexists(previous):
            previous = Path(f"{previous}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}")
        return SwapPlan(
            layout=OFFICIAL,
            root=str(root),
            staged=f"{root}.upgrade-{target}",
            previous=str(previous),
            shipped_aside=f"{root}.upgrade-{target}.shipped",
        )
    link = installation.current_link
    old_target = os.readlink(link)
    name = release_name(target, edition)
    new_target = str(installation.releases_dir / name) if os.path.isabs(old_target) else f"releases/{name}"
    return SwapPlan(
        layout=installation.layout,
        root=str(root),
        staged=str(installation.releases_dir / name),
        current_link=str(link),
        old_target=old_target,
        new_target=new_target,
    )


def unpack_dir(plan: SwapPlan) -> Path:
    staged = Path(plan.staged)
    return staged.with_name(f".{staged.name}.unpacking")


def stage_release(
    tarball: Path, installation: Installation, plan: SwapPlan, target: Version, edition: str
) -> SwapPlan:
    """Unpack and prepare the new tree at plan.staged; returns the plan with the preserved entries "
    "filled in."""
    staged = Path(plan.staged)
    if os.path.realpath(staged) == os.path.realpath(installation.release_dir):
        raise StageError(f"{staged} is the release in service; refusing to replace it")
    discard_staged(plan)
    try:
        return _stage(tarball, installation, plan, target, edition)
    except BaseException:
        # Leave nothing half-made behind; a staged tree is only ever complete.
        discard_staged(plan)
        raise


def _stage(
    tarball: Path, installation: Installation, plan: SwapPlan, target: Version, edition: str
) -> SwapPlan:
    staged = Path(plan.staged)
    work = unpack_dir(plan)
    work.mkdir(mode=0o700)
    tree = extract_release(tarball, work)

    info = read_binary_info(tree / "bin" / "mattermost")
    if info.version != target or info.edition != edition:
        raise StageError(
            f"the release unpacked from {tarball.name} reports {info.version} {info.edition}, "
            f"not {target} {edition}: wrong file"
        )

    old_tree = installation.release_dir
    reference = old_tree / "bin" / "mattermost" if installation.layout == OFFICIAL else old_tree
    owner, top = os.stat(reference), os.stat(old_tree)
    chown_tree(tree, owner.st_uid, owner.st_gid)
    os.chown(tree, top.st_uid, top.st_gid)
    os.chmod(tree, stat.S_IMODE(top.st_mode))
    if has_net_bind_capability(old_tree / "bin" / "mattermost"):
        set_net_bind_capability(tree / "bin" / "mattermost")

    if installation.layout == OFFICIAL:
        plan.preserved = preserved_entries(old_tree, tree)
        aside = Path(plan.shipped_aside)
        aside.mkdir(mode=0o700)
        for name in plan.preserved:
            shipped = tree / name
            if os.path.lexists(shipped):
                (aside / name).parent.mkdir(parents=True, exist_ok=True)
                os.rename(shipped, aside / name)
        if "client/plugins" in plan.preserved:
            (tree / "client").mkdir(exist_ok=True)

    os.rename(tree, staged)
    work.rmdir()
    if installation.layout != OFFICIAL:
        # Official trees get their labels after the switch, when they sit at their final path.
        restore_selinux_contexts([staged])
    return plan


def discard_staged(plan: SwapPlan, keep: tuple[str, ...] = ()) -> None:
    """Remove what staging made (or left after a rollback). Never touches the tree in service."""
    staged = Path(plan.staged)
    candidates = [unpack_dir(plan), staged]
    if plan.shipped_aside:
        candidates.append(Path(plan.shipped_aside))
    for path in candidates:
        if str(path) in keep or not os.path.lexists(path):
            continue
        if plan.layout != OFFICIAL and path == staged and _is_current(plan, staged):
            continue
        if (
            plan.layout == OFFICIAL
            and path == staged
            and any(os.path.lexists(path / n) for n in plan.preserved)
        ):
            raise StageError(
                f"{staged} still holds preserved state ({', '.join(plan.preserved)}); not removing it"
            )
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


def _is_current(plan: SwapPlan, path: Path) -> bool:
    link = Path(plan.current_link)
    return os.path.lexists(link) and os.path.realpath(link) == os.path.realpath(path)
