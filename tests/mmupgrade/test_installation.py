"""Discovery: unit files, environment files, effective settings, both layouts, the installed version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmupgrade.errors import Refused
from mmupgrade.installation import discover, parse_version_output
from mmupgrade.settings import effective_settings
from mmupgrade.unit import parse_environment_file, parse_show_output, read_unit_files, unit_environment
from mmupgrade.versions import Version

from .conftest import ReleaseFactory, make_host


def test_environment_file_like_systemd() -> None:
    text = r"""# comment
; also a comment
MM_SQLSETTINGS_DATASOURCE="postgres://mmuser:p%40ss@db:5432/mattermost?sslmode=disable&connect_timeout=10"
   MM_SERVICESETTINGS_SITEURL = https://chat.example.com
QUOTED='single $HOME "kept"'
ESCAPED="a \"quoted\" \\ back\$lash"
BARE=value # with a hash inside
TRAILING=spaces{three_spaces}
CONTINUED=first \
second
EMPTY=
not a line
MM_FILESETTINGS_DIRECTORY="/var/opt/mattermost/data/"
"""
    env = parse_environment_file(text.replace("{three_spaces}", "   "))
    assert env["MM_SQLSETTINGS_DATASOURCE"] == (
        "postgres://mmuser:p%40ss@db:5432/mattermost?sslmode=disable&connect_timeout=10"
    )
    assert env["MM_SERVICESETTINGS_SITEURL"] == "https://chat.example.com"
    assert env["QUOTED"] == 'single $HOME "kept"'
    assert env["ESCAPED"] == 'a "quoted" \\ back$lash'
    assert env["BARE"] == "value # with a hash inside"
    assert env["TRAILING"] == "spaces"
    assert env["CONTINUED"] == "first second"
    assert env["EMPTY"] == ""
    assert env["MM_FILESETTINGS_DIRECTORY"] == "/var/opt/mattermost/data/"
    assert "not a line" not in env


def test_unit_files_with_drop_ins(tmp_path: Path) -> None:
    etc, lib = tmp_path / "etc", tmp_path / "lib"
    (lib).mkdir()
    (lib / "mattermost.service").write_text("[Unit]\nDescription=from lib\n[Service]\nExecStart=/lib/path\n")
    (etc / "mattermost.service.d").mkdir(parents=True)
    (etc / "mattermost.service").write_text(
        "[Unit]\nDescription=Mattermost\n\n[Service]\n"
        "# a comment\n"
        "ExecStart=/opt/mattermost/bin/mattermost\n"
        "WorkingDirectory=/opt/mattermost\n"
        'Environment="MM_A=one two" MM_B=2\n'
        "EnvironmentFile=-/nonexistent/optional.env\n"
        f"EnvironmentFile={tmp_path}/main.env\n"
    )
    (etc / "mattermost.service.d" / "10-override.conf").write_text(
        "[Service]\nEnvironment=MM_B=3 \\\n  "
        "MM_C=4\nExecStart=\nExecStart=-/opt/mattermost/bin/mattermost --config x\n"
    )
    (tmp_path / "main.env").write_text("MM_A=from-file\n")
    unit = read_unit_files("mattermost", [etc, lib])
    assert unit.fragment_path == etc / "mattermost.service"
    assert unit.dropin_paths == [etc / "mattermost.service.d" / "10-override.conf"]
    assert unit.exec_start == ["/opt/mattermost/bin/mattermost", "--config", "x"]
    assert unit.working_directory == Path("/opt/mattermost")
    env = unit_environment(unit)
    # EnvironmentFile= wins over Environment=; later Environment= lines win over earlier ones.
    assert env == {"MM_A": "from-file", "MM_B": "3", "MM_C": "4"}
    # A missing file without "-" is an error, as for systemd.
    (tmp_path / "main.env").unlink()
    with pytest.raises(FileNotFoundError):
        unit_environment(unit)


def test_systemctl_show_output() -> None:
    shown = (
        "FragmentPath=/etc/systemd/system/mattermost.service\n"
        "DropInPaths=/etc/systemd/system/mattermost.service.d/a.conf "
        "/etc/systemd/system/mattermost.service.d/b.conf\n"
        "WorkingDirectory=/opt/mattermost/current\n"
        "ExecStart={ path=/opt/mattermost/current/bin/mattermost ; "
        "argv[]=/opt/mattermost/current/bin/mattermost ; "
        "ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }\n"
        'Environment=MM_X=1 "MM_Y=two words"\n'
        "EnvironmentFiles=/etc/mattermost/mattermost.env (ignore_errors=no)\n"
        "EnvironmentFiles=/etc/mattermost/extra.env (ignore_errors=yes)\n"
    )
    unit = parse_show_output("mattermost.service", shown)
    assert unit.found
    assert len(unit.dropin_paths) == 2
    assert unit.exec_start == ["/opt/mattermost/current/bin/mattermost"]
    assert unit.environment == ["MM_X=1", "MM_Y=two words"]
    assert [(str(f.path), f.optional) for f in unit.environment_files] == [
        ("/etc/mattermost/mattermost.env", False),
        ("/etc/mattermost/extra.env", True),
    ]


def test_mm_overrides_win_over_config_file(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.json").write_text(
        json.dumps(
            {
                "SqlSettings": {"DataSource": "postgres://from-file", "DriverName": "postgres"},
                "ServiceSettings": {"ListenAddress": ":8065"},
                "FileSettings": {"Directory": "./data/"},
            }
        )
    )
    env = {
        "mm_sqlsettings_datasource": "postgres://from-env",
        "MM_SERVICESETTINGS_LISTENADDRESS": "127.0.0.1:9000",
    }
    settings = effective_settings(env, tmp_path, tmp_path)
    assert settings.config_file == tmp_path / "config" / "config.json"
    assert settings.data_source == "postgres://from-env"
    assert settings.listen_address == "127.0.0.1:9000"
    assert settings.data_dir == tmp_path / "data"  # relative to the working directory
    assert settings.plugins_dir == tmp_path / "plugins"


def test_config_path_from_mm_config_and_beside_the_binary(tmp_path: Path) -> None:
    tree, working = tmp_path / "tree", tmp_path / "elsewhere"
    (tree / "config").mkdir(parents=True)
    working.mkdir()
    (tree / "config" / "config.json").write_text(
        json.dumps({"SqlSettings": {"DataSource": "postgres://tree"}})
    )
    assert effective_settings({}, working, tree).config_file == tree / "config" / "config.json"
    custom = tmp_path / "custom.json"
    custom.write_text(json.dumps({"SqlSettings": {"DataSource": "postgres://custom"}}))
    settings = effective_settings({"MM_CONFIG": str(custom)}, working, tree)
    assert settings.config_file == custom
    assert settings.data_source == "postgres://custom"


def test_config_in_database_is_detected(tmp_path: Path) -> None:
    asked = []

    def read_db_config(dsn: str) -> dict:
        asked.append(dsn)
        return {"SqlSettings": {"DataSource": "postgres://stored-in-db"}}

    settings = effective_settings(
        {"MM_CONFIG": "postgres://cfg:pw@db/mm"}, tmp_path, tmp_path, read_db_config
    )
    assert settings.config_file is None
    assert settings.config_database == "postgres://cfg:pw@db/mm"
    assert settings.config_location == "database"
    assert settings.data_source == "postgres://stored-in-db"
    assert asked == ["postgres://cfg:pw@db/mm"]


def test_version_output_parsing() -> None:
    text = (
        "Version: 11.10.0\nBuild Number: 11.10.0\nBuild Date: Thu Jan  1 00:00:00 UTC 2026\n"
        "Build Hash: abc\nBuild Enterprise Ready: true\n"
    )
    info = parse_version_output(text)
    assert (info.version, info.edition) == (Version(11, 10, 0), "enterprise")
    # Old dot releases: X.Y.0 in Version, the real patch in Build Number.
    old = parse_version_output("Version: 3.8.0\nBuild Number: 3.8.2\nBuild Enterprise Ready: false\n")
    assert (old.version, old.edition) == (Version(3, 8, 2), "team")
    with pytest.raises(Refused):
        parse_version_output("nothing useful")


@pytest.mark.parametrize("layout", ["official", "versioned"])
def test_discover_both_layouts(releases: ReleaseFactory, tmp_path: Path, layout: str) -> None:
    release = releases.get("11.9.1")
    dsn = "postgres://mmuser:s3cret-pass@127.0.0.1:5432/mattermost?sslmode=disable"
    host = make_host(tmp_path, release, layout, dsn)
    installation = discover(None, "mattermost", [host.unit_dir], use_systemctl=False)
    assert installation.layout == layout
    assert installation.root == host.root
    assert installation.version == Version(11, 9, 1)
    assert installation.edition == "enterprise"
    assert installation.settings.data_source == dsn
    assert installation.settings.listen_address == f"127.0.0.1:{host.port}"
    assert installation.settings.data_dir == host.data_dir
    if layout == "versioned":
        assert installation.release_dir == host.root / "releases" / "11.9.1-enterprise"
        assert installation.settings.config_file == host.config_file
        assert installation.environment_files == [host.env_file]
    else:
        assert installation.release_dir == host.root


def test_discover_with_install_dir_and_no_unit(releases: ReleaseFactory, tmp_path: Path) -> None:
    host = make_host(tmp_path, releases.get("11.9.1"), "versioned", "postgres://u:p@h/d")
    (host.unit_dir / "mattermost.service").unlink()
    installation = discover(host.root / "current", "mattermost", [host.unit_dir], use_systemctl=False)
    assert installation.layout == "versioned" and installation.root == host.root
    with pytest.raises(Refused, match="no Mattermost installation found"):
        discover(tmp_path / "nothing-here", "mattermost", [host.unit_dir], use_systemctl=False)
