"""The README carries every statement the Mattermost Deployment Solutions Program requires, verbatim."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
SEED = ROOT.parent / "shared" / "seed" / "deployment-solution-programs.rst"

SOLUTION_NAME = "Ansible deployment solution for Mattermost by Seed 59743834"
RHEL_EQUIVALENTS = ("Rocky Linux", "AlmaLinux", "Oracle Linux")

REQUIRED = [
    "Please see https://docs.mattermost.com for official documentation.",
    "We highly recommend users subscribe to the Mattermost security updates email list. "
    "When notified of a security update, the maintainers of this deployment solution will make an "
    "effort to update to the secure version within 10 days.",
    "The name for this deployment solution in the context of "
    "[Mattermost branding guidelines](https://www.mattermost.org/brand-guidelines/) is "
    f"`{SOLUTION_NAME}`.",
    *(
        f"This deployment uses {os_name} as an equivalent to the officially supported version of "
        "Red Hat Enterprise Linux."
        for os_name in RHEL_EQUIVALENTS
    ),
]


@pytest.mark.parametrize("sentence", REQUIRED)
def test_readme_has_required_sentence(sentence: str) -> None:
    assert sentence in README


def test_required_sentences_match_the_program_text() -> None:
    """Guard against a typo in REQUIRED itself: each template must occur in the program's own text."""
    if not SEED.exists():
        pytest.skip("the program text lives outside the repository (../shared/seed) and is absent here")
    program = " ".join(SEED.read_text(encoding="utf-8").split())
    templates = [
        "Please see https://docs.mattermost.com for official documentation.",
        "We highly recommend users subscribe to the Mattermost security updates email list. "
        "When notified of a security update, the maintainers of this deployment solution will make an "
        "effort to update to the secure version within 10 days.",
        "The name for this deployment solution in the context of "
        "[Mattermost branding guidelines](https://www.mattermost.org/brand-guidelines/) is "
        "`[NAME] for Mattermost by [CREATOR]`.",
        "This deployment uses [OPERATING_SYSTEM] as an equivalent to the officially supported version of "
        "Red Hat Enterprise Linux.",
    ]
    for template in templates:
        assert template in program, template


def test_changelog_follows_keep_a_changelog() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "keepachangelog.com" in changelog
    assert re.search(r"^## \[Unreleased\]$", changelog, re.MULTILINE)
    assert re.search(r"^### (Added|Changed|Fixed|Security|Removed|Deprecated)$", changelog, re.MULTILINE)


def test_ci_runs_exactly_the_readme_test_command() -> None:
    commands = re.findall(r"^    (\./scripts/\S+)$", README, re.MULTILINE)
    assert commands[:2] == ["./scripts/demo", "./scripts/test"]
    ci_lines = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#") and not line.startswith("set ")
    ]
    assert ci_lines[-1] == f'exec {commands[1]} "$@"' or ci_lines[-1] == commands[1]
