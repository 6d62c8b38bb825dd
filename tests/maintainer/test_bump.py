"""scripts/bump-mattermost-version against the stand-in mirror's release list, on copies of its two files."""

from __future__ import annotations

import difflib
import re
import subprocess
from pathlib import Path

import pytest

from maintainer import bump
from maintainer.bump import BumpError, changelog_with_entry, find_version, main, set_version
from mmupgrade.versions import Version
from tests.mmupgrade.conftest import Mirror, ReleaseFactory
from tests.pgserver import free_port

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = Path("roles/mattermost/defaults/main.yml")
CHANGELOG = Path("CHANGELOG.md")
OLD = "11.9.1"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """This repository's defaults file and CHANGELOG.md, copied, with the version line set to OLD."""
    root = tmp_path / "project"
    for name in (DEFAULTS, CHANGELOG):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes((ROOT / name).read_bytes())
    set_line(root, OLD)
    return root


def set_line(project: Path, version: str) -> None:
    path = project / DEFAULTS
    text, count = re.subn(
        r'^mattermost_version: "[^"\n]*"',
        f'mattermost_version: "{version}"',
        path.read_text(),
        count=1,
        flags=re.MULTILINE,
    )
    assert count == 1
    path.write_text(text)


def snapshot(project: Path) -> dict[Path, bytes]:
    return {name: (project / name).read_bytes() for name in (DEFAULTS, CHANGELOG)}


def api(mirror: Mirror) -> str:
    return f"{mirror.url}/api/releases"


def newest_published(releases: ReleaseFactory) -> str:
    """The newest release the mirror serves, read from its directory rather than through the code tested."""
    return str(max(Version.parse(path.name) for path in (releases.root("good") / "releases").iterdir()))


def heading_above(changelog: str, prefix: str) -> tuple[str, str]:
    """The "## " and "### " headings above the line starting with prefix."""
    lines = changelog.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith(prefix))
    above = lines[:index]
    return (
        next(line for line in reversed(above) if line.startswith("## ")),
        next(line for line in reversed(above) if line.startswith("### ")),
    )


def only_insertions(old: str, new: str) -> list[str]:
    """The lines new adds to old; fails when any line of old was changed or removed."""
    matcher = difflib.SequenceMatcher(None, old.splitlines(), new.splitlines(), autojunk=False)
    added = []
    for tag, _i1, _i2, j1, j2 in matcher.get_opcodes():
        assert tag in ("equal", "insert"), (tag, old, new)
        if tag == "insert":
            added.extend(new.splitlines()[j1:j2])
    return added


def read_output(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


# --- against the mirror ----------------------------------------------------------------------------


def test_bumps_to_the_newest_release(
    project: Path,
    mirror: Mirror,
    releases: ReleaseFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    newest = newest_published(releases)
    before = snapshot(project)
    github_output = tmp_path / "github-output"
    github_output.write_text("earlier=step\n")

    assert (
        main(
            ["--project", str(project), "--releases-api", api(mirror), "--github-output", str(github_output)]
        )
        == 0
    )

    out = capsys.readouterr().out
    old_lines = before[DEFAULTS].decode().splitlines(keepends=True)
    new_lines = (project / DEFAULTS).read_text().splitlines(keepends=True)
    changed = [i for i, (old, new) in enumerate(zip(old_lines, new_lines)) if old != new]
    assert len(old_lines) == len(new_lines) and len(changed) == 1
    assert new_lines[changed[0]] == f'mattermost_version: "{newest}"\n'
    assert f'-mattermost_version: "{OLD}"\n+mattermost_version: "{newest}"\n' in out
    assert f"--- a/{DEFAULTS}\n+++ b/{DEFAULTS}\n@@ -{changed[0] + 1} +{changed[0] + 1} @@\n" in out

    changelog = (project / CHANGELOG).read_text()
    entry = f"- Mattermost Server {newest} (was {OLD}): "
    assert only_insertions(before[CHANGELOG].decode(), changelog)[-1].startswith(entry)
    # 11.9.1 -> 11.10.0 is a feature release, not a dot release.
    assert heading_above(changelog, entry) == ("## [Unreleased]", "### Changed")
    assert f"+{entry}" in out

    assert github_output.read_text().startswith("earlier=step\n")  # appended, as GitHub expects
    assert read_output(github_output) == {
        "earlier": "step",
        "changed": "true",
        "previous": OLD,
        "version": newest,
    }


def test_second_run_changes_nothing(
    project: Path, mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--project", str(project), "--releases-api", api(mirror)]) == 0
    after_first = snapshot(project)
    capsys.readouterr()
    github_output = tmp_path / "github-output"

    assert (
        main(
            ["--project", str(project), "--releases-api", api(mirror), "--github-output", str(github_output)]
        )
        == 0
    )

    assert snapshot(project) == after_first
    current = str(find_version((project / DEFAULTS).read_text(), DEFAULTS)[1])
    assert capsys.readouterr().out == (
        f"mattermost_version is already {current}, the newest stable release; nothing to do.\n"
    )
    assert read_output(github_output) == {"changed": "false", "previous": current, "version": current}


def test_dot_release_goes_under_security(
    project: Path, mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    set_line(project, "11.9.0")
    before = snapshot(project)[CHANGELOG].decode()

    assert main(["--project", str(project), "--releases-api", api(mirror), "--to", "v11.9.1"]) == 0

    changelog = (project / CHANGELOG).read_text()
    entry = "- Mattermost Server 11.9.1 (was 11.9.0): "
    assert heading_above(changelog, entry) == ("## [Unreleased]", "### Security")
    added = only_insertions(before, changelog)
    assert added[-1].startswith(entry)
    unreleased = before.split("## [Unreleased]", 1)[1].split("\n## ", 1)[0]
    assert ("### Security" in added) == ("### Security" not in unreleased)  # created when missing
    assert find_version((project / DEFAULTS).read_text(), DEFAULTS)[1] == Version(11, 9, 1)
    assert '+mattermost_version: "11.9.1"' in capsys.readouterr().out


def test_dry_run_changes_nothing(
    project: Path,
    mirror: Mirror,
    releases: ReleaseFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = snapshot(project)
    github_output = tmp_path / "github-output"

    args = ["--project", str(project), "--releases-api", api(mirror), "--dry-run"]
    assert main([*args, "--github-output", str(github_output)]) == 0

    assert snapshot(project) == before
    out = capsys.readouterr().out
    newest = newest_published(releases)
    assert f'+mattermost_version: "{newest}"' in out
    assert out.endswith("Dry run: nothing was changed.\n")
    assert read_output(github_output) == {"changed": "false", "previous": OLD, "version": newest}
    assert sorted(path.name for path in (project / DEFAULTS).parent.iterdir()) == ["main.yml"]


def test_downgrade_is_refused_before_any_change(
    project: Path, mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(project)
    github_output = tmp_path / "github-output"

    code = main(
        [
            "--project",
            str(project),
            "--releases-api",
            api(mirror),
            "--to",
            "11.8.5",
            "--github-output",
            str(github_output),
        ]
    )

    assert code == 1
    assert snapshot(project) == before
    assert not github_output.exists()
    err = capsys.readouterr().err
    assert err.startswith(f"error: --to 11.8.5 is older than mattermost_version {OLD}")
    assert err.rstrip().endswith("nothing was changed")


def test_unreachable_release_list_is_refused(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(project)
    unreachable = f"http://127.0.0.1:{free_port()}/api/releases"

    assert main(["--project", str(project), "--releases-api", unreachable]) == 1

    assert snapshot(project) == before
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: cannot read the release list: GET {unreachable}")
    assert "nothing was changed" in captured.err


def test_to_must_be_a_published_release(
    project: Path, mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(project)

    assert main(["--project", str(project), "--releases-api", api(mirror), "--to", "11.10.9"]) == 1

    assert snapshot(project) == before
    assert "--to 11.10.9 is not a published stable release" in capsys.readouterr().err


def test_to_the_current_version_needs_no_release_list(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}/api/releases"
    assert main(["--project", str(project), "--releases-api", unreachable, "--to", OLD]) == 0
    assert capsys.readouterr().out == f"mattermost_version is already {OLD}; nothing to do.\n"


def test_known_bad_upgrade_path_is_refused(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    set_line(project, "10.11.17")
    before = snapshot(project)
    assert main(["--project", str(project), "--to", "11.7.2"]) == 1
    assert snapshot(project) == before
    assert "known-bad path" in capsys.readouterr().err


def test_release_list_that_is_not_json_is_refused(
    project: Path, mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(project)
    assert main(["--project", str(project), "--releases-api", f"{mirror.url}/no-such-list"]) == 1
    assert snapshot(project) == before
    assert "HTTP 404" in capsys.readouterr().err


@pytest.mark.parametrize("to", ["11.10", "11.10.0-rc1", "latest", "011.10.0"])
def test_malformed_to_is_a_usage_error(project: Path, to: str, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(project)
    assert main(["--project", str(project), "--to", to]) == 2
    assert snapshot(project) == before
    err = capsys.readouterr().err
    assert err.startswith("usage: bump-mattermost-version")
    assert "error: --to:" in err


def test_project_without_the_files_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--project", str(tmp_path), "--to", "11.10.0"]) == 1
    assert "is --project this repository?" in capsys.readouterr().err


def test_changelog_without_unreleased_is_refused_first(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / CHANGELOG).write_text("# Changelog\n\n## [1.0.0] - 2026-01-01\n")
    before = snapshot(project)
    unreachable = f"http://127.0.0.1:{free_port()}/api/releases"
    assert main(["--project", str(project), "--releases-api", unreachable]) == 1
    assert snapshot(project) == before
    assert 'has no "## [Unreleased]" section' in capsys.readouterr().err


def test_help_documents_the_contract(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for text in ("--to X.Y.Z", "--releases-api URL", "--project DIR", "--dry-run", "--github-output FILE"):
        assert text in out
    for text in ("exit codes:", "changed=true|false", "previous=A.B.C", "version=X.Y.Z"):
        assert text in out
    assert bump.DEFAULT_RELEASES_API == "https://api.github.com/repos/mattermost/mattermost/releases"


def test_the_script_runs_the_module_from_any_directory(project: Path, mirror: Mirror, tmp_path: Path) -> None:
    before = snapshot(project)
    proc = subprocess.run(
        [
            str(ROOT / "scripts" / "bump-mattermost-version"),
            *("--project", "project", "--releases-api", api(mirror), "--dry-run"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert f'-mattermost_version: "{OLD}"' in proc.stdout
    assert snapshot(project) == before


# --- the two edits, line by line -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('mattermost_version: "11.9.1"\n', 'mattermost_version: "11.10.0"\n'),
        ("mattermost_version: '11.9.1'\n", "mattermost_version: '11.10.0'\n"),
        ("mattermost_version: 11.9.1   # pinned\n", "mattermost_version: 11.10.0   # pinned\n"),
        ('mattermost_version:  "11.9.1"\r\n', 'mattermost_version:  "11.10.0"\r\n'),
        ('mattermost_version: "11.9.1"', 'mattermost_version: "11.10.0"'),
    ],
)
def test_set_version_keeps_the_line_format(line: str, expected: str) -> None:
    text = f"---\r\n# about it\r\n{line}" if line.endswith("\r\n") else f"---\n# about it\n{line}"
    index, version = find_version(text, DEFAULTS)
    assert (index, version) == (2, Version(11, 9, 1))
    assert set_version(text, index, Version(11, 10, 0)) == text.replace(line, expected)


@pytest.mark.parametrize(
    "text",
    [
        "mattermost_edition: team\n",
        "mattermost_version: \"{{ lookup('env', 'MM') }}\"\n",
        'mattermost_version: "11.9.1"\nmattermost_version: "11.9.2"\n',
        'mattermost_version: "v11.9.1"\n',
    ],
)
def test_find_version_refuses_what_it_cannot_rewrite_exactly(text: str) -> None:
    with pytest.raises(BumpError, match="nothing was changed"):
        find_version(text, DEFAULTS)


def test_find_version_ignores_comments_and_nested_keys() -> None:
    text = (
        '# mattermost_version: "1.0.0"\nother:\n  mattermost_version: "2.0.0"\nmattermost_version: "3.0.0"\n'
    )
    assert find_version(text, DEFAULTS) == (3, Version(3, 0, 0))


HEAD = "# Changelog\n\n## [Unreleased]\n\n"
RELEASED = "## [1.0.0] - 2026-01-01\n\n### Added\n\n- The first release.\n"


def test_entry_joins_an_existing_subsection_after_its_last_item() -> None:
    text = (
        HEAD
        + "### Security\n\n- Mattermost Server 11.9.1 (was 11.9.0).\n  A continuation line.\n\n"
        + RELEASED
    )
    new = changelog_with_entry(text, "Security", "- NEW")
    assert new == text.replace("A continuation line.\n", "A continuation line.\n- NEW\n")


def test_new_subsection_takes_its_keep_a_changelog_place() -> None:
    text = HEAD + "### Added\n\n- A.\n\n### Fixed\n\n- F.\n\n" + RELEASED
    assert changelog_with_entry(text, "Changed", "- NEW") == text.replace(
        "### Fixed\n", "### Changed\n\n- NEW\n\n### Fixed\n"
    )
    assert changelog_with_entry(text, "Security", "- NEW") == text.replace(
        "- F.\n", "- F.\n\n### Security\n\n- NEW\n"
    )


def test_new_subsection_in_an_empty_unreleased_section_at_the_end_of_the_file() -> None:
    assert changelog_with_entry("# Changelog\n\n## [Unreleased]", "Security", "- NEW") == (
        "# Changelog\n\n## [Unreleased]\n\n### Security\n\n- NEW\n"
    )


def test_changelog_line_endings_are_kept() -> None:
    text = (HEAD + "### Added\n\n- A.\n").replace("\n", "\r\n")
    assert changelog_with_entry(text, "Added", "- NEW") == text + "- NEW\r\n"


def test_changelog_without_unreleased() -> None:
    with pytest.raises(BumpError, match=r"no \"## \[Unreleased\]\" section"):
        changelog_with_entry("# Changelog\n\n" + RELEASED, "Security", "- NEW")


def test_github_token_goes_to_githubs_api_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "t0ken")
    assert bump.github_headers(
        "https://api.github.com/repos/mattermost/mattermost/releases?per_page=100"
    ) == {"Authorization": "Bearer t0ken"}
    for url in (
        "http://api.github.com/repos/x",
        "https://mirror.example/api/releases",
        "file:///tmp/list.json",
    ):
        assert bump.github_headers(url) == {}
    monkeypatch.delenv("GITHUB_TOKEN")
    assert bump.github_headers("https://api.github.com/repos/mattermost/mattermost/releases") == {}
