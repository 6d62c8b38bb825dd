"""The example inventories put their hosts in the tiers site.yml sets up, and name every secret they use."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
INVENTORIES = ROOT / "inventories"
TIERS = ("mattermost_database", "mattermost_application", "mattermost_proxy")


def groups_of_hosts(node: dict, group: str = "all", parents: tuple[str, ...] = ()) -> dict[str, set[str]]:
    """Map every host of a YAML inventory to the groups it is in, directly or through its parents."""
    memberships: dict[str, set[str]] = {}
    lineage = (*parents, group)
    for host in (node or {}).get("hosts") or {}:
        memberships.setdefault(host, set()).update(lineage)
    for child, child_node in ((node or {}).get("children") or {}).items():
        for host, groups in groups_of_hosts(child_node, child, lineage).items():
            memberships.setdefault(host, set()).update(groups)
    return memberships


@pytest.mark.parametrize("name", ["single-node", "demo"])
def test_one_host_runs_every_tier(name: str) -> None:
    inventory = yaml.safe_load((INVENTORIES / name / "hosts.yml").read_text(encoding="utf-8"))
    memberships = groups_of_hosts(inventory["all"])
    assert len(memberships) == 1
    (groups,) = memberships.values()
    assert set(TIERS) <= groups
    assert "mattermost_servers" in groups


def test_site_playbook_targets_the_tiers_in_order() -> None:
    plays = yaml.safe_load((ROOT / "playbooks" / "site.yml").read_text(encoding="utf-8"))
    assert [play["hosts"] for play in plays] == list(TIERS)
    assert all(play["become"] is True for play in plays)


# The examples an admin copies: each keeps its secrets in an Ansible Vault file beside its settings.
EXAMPLES = ("single-node", "multi-node")


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_names_every_secret_it_uses(name: str) -> None:
    group_vars = INVENTORIES / name / "group_vars" / "all"
    settings = (group_vars / "main.yml").read_text(encoding="utf-8")
    example_text = (group_vars / "vault.yml.example").read_text(encoding="utf-8")
    referenced = set(re.findall(r"\{\{\s*(vault_\w+)\s*\}\}", settings))
    assert referenced == {"vault_mattermost_db_password"}
    assert referenced <= set(yaml.safe_load(example_text))
    # Its ansible-vault commands name this inventory's file, not another example's.
    assert f"inventories/{name}/group_vars/all/vault.yml" in example_text
    # Ansible must not load the example as variables: only .yml, .yaml, .json and extensionless files count.
    assert not (group_vars / "vault.yml").exists()


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_secrets_are_not_in_plain_text(name: str) -> None:
    settings = yaml.safe_load(
        (INVENTORIES / name / "group_vars" / "all" / "main.yml").read_text(encoding="utf-8")
    )
    # One secret for both tiers: the password the database user gets is the one Mattermost logs in with.
    both_tiers = ("mattermost_db_password", "postgresql_mattermost_password")
    assert {settings[setting] for setting in both_tiers} == {"{{ vault_mattermost_db_password }}"}


def test_multi_node_puts_each_tier_on_its_own_host() -> None:
    inventory = yaml.safe_load((INVENTORIES / "multi-node" / "hosts.yml").read_text(encoding="utf-8"))
    memberships = groups_of_hosts(inventory["all"])
    assert len(memberships) == len(TIERS)
    for groups in memberships.values():
        assert len(groups & set(TIERS)) == 1
        assert "mattermost_servers" in groups


# The settings that connect the tiers: each address is set on both ends of a connection.
NETWORK_SETTINGS = (
    "postgresql_listen_addresses",
    "mattermost_db_host",
    "postgresql_allowed_clients",
    "mattermost_listen_address",
    "nginx_upstream_servers",
    "postgresql_allowed_clients_connection_type",
    "mattermost_db_sslmode",
)


def test_multi_node_tiers_point_at_each_other() -> None:
    settings = yaml.safe_load(
        (INVENTORIES / "multi-node" / "group_vars" / "all" / "main.yml").read_text(encoding="utf-8")
    )
    app_address, _, _ = settings["mattermost_listen_address"].rpartition(":")
    # PostgreSQL listens where Mattermost connects, and lets in the address Mattermost listens on.
    assert settings["mattermost_db_host"] in settings["postgresql_listen_addresses"]
    assert settings["postgresql_allowed_clients"] == [f"{app_address}/32"]
    # nginx proxies to where Mattermost listens, which is not loopback: nginx runs on another host.
    assert settings["nginx_upstream_servers"] == [settings["mattermost_listen_address"]]
    assert not app_address.startswith("127.")
    # pg_hba.conf accepts the application host over TLS only, so Mattermost must ask for TLS.
    assert settings["postgresql_allowed_clients_connection_type"] == "hostssl"
    assert settings["mattermost_db_sslmode"] != "disable"


def test_multi_node_scenario_sets_what_the_example_sets() -> None:
    """molecule/multi-node proves the example's topology: it sets every setting that connects the tiers."""
    scenario = yaml.safe_load((ROOT / "molecule" / "multi-node" / "molecule.yml").read_text(encoding="utf-8"))
    scenario_vars = scenario["provisioner"]["inventory"]["group_vars"]["all"]
    example = yaml.safe_load(
        (INVENTORIES / "multi-node" / "group_vars" / "all" / "main.yml").read_text(encoding="utf-8")
    )
    for name in NETWORK_SETTINGS:
        assert name in example, name
        assert name in scenario_vars, name
    for name in ("postgresql_allowed_clients_connection_type", "mattermost_db_sslmode"):
        assert scenario_vars[name] == example[name], name
