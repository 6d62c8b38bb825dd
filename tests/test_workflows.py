"""The GitHub workflows call what the project has, pin what they borrow and grant no more than they use.

check-jsonschema (scripts/test's lint step) checks their shape against GitHub's schema; this checks what a
schema cannot: that the commands and files they name exist, that the CI matrix matches molecule/distros,
that actions are pinned to commits, and that every shell step parses.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.yml"))
# owner/repo@<40 hex digits> # <tag it was>: a tag can be moved to other code, a commit cannot.
PINNED_ACTION = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d[\w.-]*$")
# Event fields anyone who opens a pull request or names a branch controls: in a shell step they would be
# pasted into the script before it runs.
UNTRUSTED = re.compile(r"\$\{\{[^}]*(github\.event\.|github\.head_ref)")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def job_scripts(job: dict) -> list[str]:
    """The shell scripts of a job's `run:` steps."""
    return [step["run"] for step in job.get("steps", []) if "run" in step]


def run_scripts(workflow: dict) -> list[str]:
    return [script for job in workflow["jobs"].values() for script in job_scripts(job)]


@pytest.fixture(scope="module")
def ci() -> dict:
    return load(WORKFLOWS / "ci.yml")


@pytest.fixture(scope="module")
def release_watch() -> dict:
    return load(WORKFLOWS / "release-watch.yml")


def test_the_workflows_exist() -> None:
    assert {path.name for path in WORKFLOW_FILES} >= {"ci.yml", "release-watch.yml"}


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda path: path.name)
def test_actions_are_pinned_to_commits(path: Path) -> None:
    uses = re.findall(r"^\s*(?:-\s+)?uses:\s*(.+?)\s*$", path.read_text(encoding="utf-8"), re.MULTILINE)
    assert uses
    assert [line for line in uses if not PINNED_ACTION.match(line)] == []


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda path: path.name)
def test_workflow_token_is_read_only_by_default(path: Path) -> None:
    permissions = load(path)["permissions"]
    assert permissions in ({}, {"contents": "read"})


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda path: path.name)
def test_shell_steps_parse_and_take_no_untrusted_input(path: Path) -> None:
    bash = shutil.which("bash")
    assert bash
    for script in run_scripts(load(path)):
        assert not UNTRUSTED.search(script), script
        # GitHub replaces ${{ ... }} before the shell sees the script.
        plain = re.sub(r"\$\{\{.*?\}\}", "placeholder", script)
        result = subprocess.run([bash, "-n"], input=plain, capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{result.stderr}\n{script}"


def test_ci_runs_the_projects_test_command(ci: dict) -> None:
    assert any("bash .ci/run" in script for script in job_scripts(ci["jobs"]["test"]))
    assert (ROOT / ".ci" / "run").is_file()


def test_ci_runs_every_distros_platform(ci: dict) -> None:
    job = ci["jobs"]["distros"]
    assert job["env"]["MMTEST_DISTROS"] == "1"
    scenario = load(ROOT / "molecule" / "distros" / "molecule.yml")
    names = {p["name"].replace("${MOLECULE_SCENARIO_NAME}", "distros") for p in scenario["platforms"]}
    assert {f"{platform}-distros" for platform in job["strategy"]["matrix"]["platform"]} == names
    (command,) = [script for script in job_scripts(job) if "molecule test" in script]
    assert "--scenario-name distros" in command
    assert '--platform-name "${{ matrix.platform }}-distros"' in command


def test_release_watch_runs_daily_and_on_demand(release_watch: dict) -> None:
    triggers = release_watch["on"]
    assert len(triggers["schedule"]) == 1
    assert "workflow_dispatch" in triggers


def test_release_watch_calls_the_bump_script_and_asks_git(release_watch: dict) -> None:
    scripts = run_scripts(release_watch)
    assert "scripts/bump-mattermost-version" in scripts
    bump = ROOT / "scripts" / "bump-mattermost-version"
    assert bump.is_file()
    assert bump.stat().st_mode & 0o111
    # The script exits 0 whether or not it bumped: whether to propose anything is git's answer.
    assert any("git diff --quiet" in script for script in scripts)


def test_release_watch_grants_writes_to_its_one_job_only(release_watch: dict) -> None:
    (job,) = release_watch["jobs"].values()
    assert job["permissions"] == {"contents": "write", "pull-requests": "write", "actions": "write"}
    assert re.fullmatch(r"[\w./-]+", job["env"]["BRANCH"])


def test_release_watch_starts_a_ci_workflow_that_accepts_it(release_watch: dict, ci: dict) -> None:
    (script,) = [script for script in run_scripts(release_watch) if "gh workflow run" in script]
    (workflow,) = re.findall(r"gh workflow run (\S+)", script)
    assert workflow == "ci.yml"
    assert "workflow_dispatch" in ci["on"]
