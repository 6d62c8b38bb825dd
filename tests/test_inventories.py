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


def test_single_node_example_names_every_secret_it_uses() -> None:
    group_vars = INVENTORIES / "single-node" / "group_vars" / "all"
    settings = (group_vars / "main.yml").read_text(encoding="utf-8")
    example = yaml.safe_load((group_vars / "vault.yml.example").read_text(encoding="utf-8"))
    referenced = set(re.findall(r"\{\{\s*(vault_\w+)\s*\}\}", settings))
    assert referenced == {"vault_mattermost_db_password"}
    assert referenced <= set(example)
    # Ansible must not load the example as variables: only .yml, .yaml, .json and extensionless files count.
    assert not (group_vars / "vault.yml").exists()


def test_single_node_secrets_are_not_in_plain_text() -> None:
    settings = yaml.safe_load(
        (INVENTORIES / "single-node" / "group_vars" / "all" / "main.yml").read_text(encoding="utf-8")
    )
    # One secret for both tiers: the password the database user gets is the one Mattermost logs in with.
    both_tiers = ("mattermost_db_password", "postgresql_mattermost_password")
    assert {settings[name] for name in both_tiers} == {"{{ vault_mattermost_db_password }}"}
