"""The stand-in server's configuration: where it comes from, MM_* overrides, and what it writes back."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.conftest import MattermostDatabase
from tests.standin.mmstandin import config, db


def write_config(path: Path, document: dict, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2))
    path.chmod(mode)
    return path


@pytest.fixture
def install_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An install dir that is also the working directory, as with the official unit."""
    root = tmp_path / "mattermost"
    write_config(root / "config" / "config.json", config.default_config())
    monkeypatch.chdir(root)
    return root


# Where the configuration comes from ---------------------------------------------------------------------


def test_flag_wins_over_mm_config_and_default() -> None:
    env = {"MM_CONFIG": "/etc/mm/from-env.json"}
    assert config.choose_source("/etc/mm/from-flag.json", env).location == "/etc/mm/from-flag.json"
    assert config.choose_source(None, env).location == "/etc/mm/from-env.json"
    assert config.choose_source(None, {}).location == "config/config.json"


def test_postgres_url_means_config_in_database() -> None:
    assert config.choose_source("postgres://u:p@h/db", {}).in_database
    assert config.choose_source(None, {"MM_CONFIG": "postgresql://u:p@h/db"}).in_database
    assert not config.choose_source("config/config.json", {}).in_database


def test_default_path_is_found_next_to_the_binary_from_another_directory(
    install_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = config.load(config.choose_source(None, {}), {}, install_dir, persist=False)
    assert loaded.path == install_dir / "config" / "config.json"


def test_mm_config_file_is_read(install_dir: Path, tmp_path: Path) -> None:
    other = write_config(tmp_path / "state" / "config.json", {"TeamSettings": {"SiteName": "From MM_CONFIG"}})
    env = {"MM_CONFIG": str(other)}
    loaded = config.load(config.choose_source(None, env), env, install_dir, persist=False)
    assert loaded.path == other
    assert loaded.effective["TeamSettings"]["SiteName"] == "From MM_CONFIG"
    # Keys the file lacks come from the defaults.
    assert loaded.effective["ServiceSettings"]["ListenAddress"] == ":8065"


def test_flag_file_is_read_relative_to_working_directory(install_dir: Path) -> None:
    write_config(install_dir / "custom.json", {"TeamSettings": {"SiteName": "From flag"}})
    loaded = config.load(config.choose_source("custom.json", {}), {}, install_dir, persist=False)
    assert loaded.effective["TeamSettings"]["SiteName"] == "From flag"


def test_missing_file_is_created_from_defaults_on_start(install_dir: Path) -> None:
    source = config.choose_source("new/config.json", {})
    loaded = config.load(source, {}, install_dir, persist=True)
    assert loaded.created
    written = install_dir / "new" / "config.json"
    assert json.loads(written.read_text()) == config.default_config()
    assert stat.S_IMODE(written.stat().st_mode) == 0o600


def test_missing_file_is_not_created_by_read_only_commands(install_dir: Path) -> None:
    loaded = config.load(config.choose_source("absent.json", {}), {}, install_dir, persist=False)
    assert not (install_dir / "absent.json").exists()
    assert loaded.effective == config.default_config()


def test_invalid_json_is_a_config_error(install_dir: Path) -> None:
    (install_dir / "config" / "config.json").write_text("{not json")
    with pytest.raises(config.ConfigError, match="not valid JSON"):
        config.load(config.choose_source(None, {}), {}, install_dir, persist=False)


# Environment overrides ----------------------------------------------------------------------------------


def test_env_overrides_win_and_are_typed(install_dir: Path) -> None:
    env = {
        "MM_SQLSETTINGS_DATASOURCE": "postgres://mmuser:secret@db.example:5432/mattermost?sslmode=disable",
        "MM_SERVICESETTINGS_SITEURL": "https://chat.example.com",
        "MM_SERVICESETTINGS_LISTENADDRESS": "127.0.0.1:8065",
        "MM_TEAMSETTINGS_ENABLEOPENSERVER": "true",
        "MM_FILESETTINGS_MAXFILESIZE": "52428800",
        "MM_PLUGINSETTINGS_ENABLE": "false",
        "MM_SERVICESETTINGS_TRUSTEDPROXYIPHEADER": "X-Forwarded-For X-Real-IP",
        "MM_INSTALL_TYPE": "tarball",  # not a setting: ignored
        "MM_CONFIG": "config/config.json",
    }
    loaded = config.load(config.choose_source(None, {}), env, install_dir, persist=False)
    settings = loaded.effective
    assert settings["SqlSettings"]["DataSource"] == env["MM_SQLSETTINGS_DATASOURCE"]
    assert settings["ServiceSettings"]["SiteURL"] == "https://chat.example.com"
    assert settings["ServiceSettings"]["ListenAddress"] == "127.0.0.1:8065"
    assert settings["TeamSettings"]["EnableOpenServer"] is True
    assert settings["FileSettings"]["MaxFileSize"] == 52428800
    assert settings["PluginSettings"]["Enable"] is False
    assert settings["ServiceSettings"]["TrustedProxyIPHeader"] == ["X-Forwarded-For", "X-Real-IP"]
    assert "SqlSettings.DataSource" in loaded.overridden
    assert loaded.rejected_env == []


def test_env_override_matches_case_insensitively_and_beats_the_file(install_dir: Path) -> None:
    write_config(install_dir / "config" / "config.json", {"LogSettings": {"FileLocation": "/from/file"}})
    env = {"mm_logsettings_filelocation": "/from/env"}
    loaded = config.load(config.choose_source(None, {}), env, install_dir, persist=False)
    assert loaded.effective["LogSettings"]["FileLocation"] == "/from/env"


def test_env_override_of_a_key_only_in_the_file(install_dir: Path) -> None:
    write_config(install_dir / "config" / "config.json", {"ServiceSettings": {"SomeFutureSetting": 5}})
    env = {"MM_SERVICESETTINGS_SOMEFUTURESETTING": "7"}
    loaded = config.load(config.choose_source(None, {}), env, install_dir, persist=False)
    assert loaded.effective["ServiceSettings"]["SomeFutureSetting"] == 7


def test_env_override_with_a_bad_value_is_rejected_not_applied(install_dir: Path) -> None:
    env = {"MM_TEAMSETTINGS_MAXUSERSPERTEAM": "many", "MM_PLUGINSETTINGS_ENABLE": "maybe"}
    loaded = config.load(config.choose_source(None, {}), env, install_dir, persist=False)
    assert loaded.effective["TeamSettings"]["MaxUsersPerTeam"] == 50
    assert loaded.effective["PluginSettings"]["Enable"] is True
    assert sorted(loaded.rejected_env) == ["MM_PLUGINSETTINGS_ENABLE", "MM_TEAMSETTINGS_MAXUSERSPERTEAM"]


@pytest.mark.parametrize(
    ("document", "complaint"),
    [
        ({"SqlSettings": "postgres://x"}, "SqlSettings must be a JSON object"),
        ({"ServiceSettings": {"ListenAddress": 8065}}, "ServiceSettings.ListenAddress must be a string"),
    ],
)
def test_wrongly_typed_settings_are_config_errors(install_dir: Path, document: dict, complaint: str) -> None:
    path = write_config(install_dir / "config" / "config.json", document)
    before = path.read_text()
    with pytest.raises(config.ConfigError, match=complaint):
        config.load(config.choose_source(None, {}), {}, install_dir, persist=True)
    assert path.read_text() == before


def test_null_in_file_means_default() -> None:
    merged = config.with_defaults({"TeamSettings": {"SiteName": None}}, config.default_config())
    assert merged["TeamSettings"]["SiteName"] == "Mattermost"


# Writing missing keys back ------------------------------------------------------------------------------


def test_start_adds_missing_keys_and_keeps_everything_else(install_dir: Path) -> None:
    path = write_config(
        install_dir / "config" / "config.json",
        {
            "ServiceSettings": {"SiteURL": "https://chat.example.com", "ListenAddress": "0.0.0.0:80"},
            "TeamSettings": {"ExperimentalViewArchivedChannels": False},
            "CustomSection": {"Mine": [1, 2]},
        },
        mode=0o640,
    )
    env = {"MM_SERVICESETTINGS_SITEURL": "https://from-env.example.com", "MM_SQLSETTINGS_DATASOURCE": "x"}
    loaded = config.load(config.choose_source(None, {}), env, install_dir, persist=True)

    written = json.loads(path.read_text())
    # Existing values stay, so do unknown sections.
    assert written["ServiceSettings"]["SiteURL"] == "https://chat.example.com"
    assert written["ServiceSettings"]["ListenAddress"] == "0.0.0.0:80"
    assert written["TeamSettings"]["ExperimentalViewArchivedChannels"] is False
    assert written["CustomSection"] == {"Mine": [1, 2]}
    # Missing defaults are added; env-overridden values are not written back.
    assert written["TeamSettings"]["SiteName"] == "Mattermost"
    assert written["SqlSettings"]["DataSource"] == config.DEFAULT_DATA_SOURCE
    assert written["PluginSettings"]["Directory"] == "./plugins"
    assert list(written)[:3] == ["ServiceSettings", "TeamSettings", "CustomSection"]
    assert "TeamSettings.SiteName" in loaded.added_keys
    assert "SqlSettings" in loaded.added_keys
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert loaded.effective["ServiceSettings"]["SiteURL"] == "https://from-env.example.com"
    # No temporary files are left next to the config.
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.json"]


def test_complete_file_is_not_rewritten(install_dir: Path) -> None:
    path = install_dir / "config" / "config.json"
    before = path.read_text()
    mtime = path.stat().st_mtime_ns
    loaded = config.load(config.choose_source(None, {}), {}, install_dir, persist=True)
    assert loaded.added_keys == []
    assert path.read_text() == before
    assert path.stat().st_mtime_ns == mtime


def test_symlinked_config_stays_a_symlink(install_dir: Path, tmp_path: Path) -> None:
    real = write_config(tmp_path / "state" / "config.json", {"TeamSettings": {"SiteName": "Linked"}})
    link = install_dir / "config" / "linked.json"
    link.symlink_to(real)
    config.load(config.choose_source(str(link), {}), {}, install_dir, persist=True)
    assert link.is_symlink()
    assert json.loads(real.read_text())["SqlSettings"]["DriverName"] == "postgres"
    assert json.loads(real.read_text())["TeamSettings"]["SiteName"] == "Linked"


def test_add_missing_keys_reports_nested_paths() -> None:
    completed, added = config.add_missing_keys(
        {"PluginSettings": {"Plugins": {"com.example": {"a": 1}}}}, config.default_config()
    )
    assert completed["PluginSettings"]["Plugins"] == {"com.example": {"a": 1}}
    assert "PluginSettings.Enable" in added
    assert "PluginSettings.Plugins" not in added


def test_default_config_is_a_fresh_copy() -> None:
    first = config.default_config()
    first["ServiceSettings"]["SiteURL"] = "changed"
    assert config.default_config()["ServiceSettings"]["SiteURL"] == ""


def test_default_config_has_the_settings_installers_rely_on() -> None:
    defaults = config.default_config()
    assert defaults["ServiceSettings"]["ListenAddress"] == ":8065"
    assert defaults["SqlSettings"]["DriverName"] == "postgres"
    assert defaults["SqlSettings"]["DataSource"].startswith("postgres://mmuser:mostest@localhost/")
    assert defaults["FileSettings"]["Directory"] == "./data/"
    assert defaults["PluginSettings"]["ClientDirectory"] == "./client/plugins"
    assert defaults["TeamSettings"]["ExperimentalViewArchivedChannels"] is True
    assert defaults["LogSettings"]["ConsoleLevel"] == "INFO"
    assert defaults["EmailSettings"]["SMTPServer"] == ""


# Configuration stored in the database -------------------------------------------------------------------


def test_database_config_is_created_then_reused(mm_database: MattermostDatabase, install_dir: Path) -> None:
    env = {"MM_CONFIG": mm_database.dsn}
    source = config.choose_source(None, env)
    first = config.load(source, env, install_dir, persist=True)
    assert first.created
    # The data lives where the configuration lives until an admin says otherwise.
    assert first.effective["SqlSettings"]["DataSource"] == mm_database.dsn

    database = db.Database(mm_database.dsn)
    try:
        stored = json.loads(database.query("SELECT Value FROM Configurations WHERE Active")[0][0])
        stored["TeamSettings"]["SiteName"] = "Stored in PostgreSQL"
        database.execute("UPDATE Configurations SET Value = $1 WHERE Active", [json.dumps(stored)])
    finally:
        database.close()

    override = {**env, "MM_SQLSETTINGS_DATASOURCE": "postgres://other:pw@elsewhere/db"}
    second = config.load(source, override, install_dir, persist=True)
    assert not second.created
    assert second.effective["TeamSettings"]["SiteName"] == "Stored in PostgreSQL"
    assert second.effective["SqlSettings"]["DataSource"] == "postgres://other:pw@elsewhere/db"


def test_database_config_gains_missing_keys_as_a_new_active_row(
    mm_database: MattermostDatabase, install_dir: Path
) -> None:
    database = db.Database(mm_database.dsn)
    try:
        database.execute(config.CONFIGURATIONS_TABLE)
        database.execute(
            "INSERT INTO Configurations (Id, Value, CreateAt, Active) VALUES ($1, $2, 1, true)",
            ["a" * 26, json.dumps({"TeamSettings": {"SiteName": "Old row"}})],
        )
        loaded = config.load(config.ConfigSource(mm_database.dsn), {}, install_dir, persist=True)
        assert "SqlSettings" in loaded.added_keys
        rows = database.query("SELECT Active, Value FROM Configurations ORDER BY CreateAt")
    finally:
        database.close()
    assert [active for active, _ in rows] == [None, True]
    newest = json.loads(rows[1][1])
    assert newest["TeamSettings"]["SiteName"] == "Old row"
    assert newest["SqlSettings"]["DriverName"] == "postgres"


def test_database_config_read_only_does_not_create_the_table(
    mm_database: MattermostDatabase, install_dir: Path
) -> None:
    loaded = config.load(config.ConfigSource(mm_database.dsn), {}, install_dir, persist=False)
    assert loaded.effective["SqlSettings"]["DataSource"] == mm_database.dsn
    database = db.Database(mm_database.dsn)
    try:
        assert database.query("SELECT to_regclass('configurations') IS NULL") == [(True,)]
    finally:
        database.close()
