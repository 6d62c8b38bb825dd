"""--check: the installed version against the newest release; exit 10 when an update exists."""

from __future__ import annotations

from typing import Any

from .context import Context
from .errors import EXIT_UPDATE_AVAILABLE, Refused
from .output import result
from .recovery import pending
from .releases import ReleaseListError, newest_version


def run_check(ctx: Context) -> dict[str, Any]:
    installation = ctx.discover()
    unfinished = pending(ctx)
    if unfinished is not None:
        ctx.reporter.warn(
            f"an upgrade to {unfinished.get('to')} did not finish; run mmupgrade to finish or roll it back"
        )
    try:
        newest = newest_version(ctx.options.releases_api)
    except ReleaseListError as exc:
        raise Refused(str(exc)) from None
    current = installation.version
    if newest > current:
        return result(
            "update-available",
            EXIT_UPDATE_AVAILABLE,
            f"Mattermost {newest} is available; {current} ({installation.edition}) is installed. "
            "Upgrade with: mmupgrade --latest",
            current,
            newest,
        )
    return result(
        "up-to-date",
        0,
        f"Mattermost {current} is installed; {newest} is the newest release.",
        current,
        newest,
    )
