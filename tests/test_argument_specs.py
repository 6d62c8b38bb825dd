"""Bad input to the postgresql and nginx roles fails before anything changes, naming the variable.

Each case applies one role to localhost in check mode (a second safety net: nothing could change even if
the role went further than it should) and reads the run back through the ansible.posix.json callback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
VALIDATION_TASK = "Validating arguments against arg spec 'main'"
# A marker that must never appear in the output (no_log), not a real credential.
SECRET = "marker-Must-Not-Leak"  # noqa: S105

# Input that passes, so that each case breaks exactly one thing.
GOOD_VARS: dict[str, dict[str, Any]] = {
    "postgresql": {"postgresql_mattermost_password": SECRET},
    "nginx": {"nginx_server_name": "mattermost.test"},
}


@dataclass(frozen=True)
class Case:
    role: str
    overrides: dict[str, Any]
    failed_task: str  # the start of the name of the task that must stop the run
    message: str  # must appear in that task's failure message
    # The role's own checks (after argument validation) need the platform's facts.
    gather_facts: bool = False


CASES = {
    "unknown tls mode": Case(
        "nginx", {"nginx_tls_mode": "bogus"}, VALIDATION_TASK, "nginx_tls_mode must be one of"
    ),
    "missing server name": Case(
        "nginx", {"nginx_server_name": None}, VALIDATION_TASK, "missing required arguments: nginx_server_name"
    ),
    "hsts max-age not a number": Case(
        "nginx", {"nginx_hsts_max_age": "six months"}, VALIDATION_TASK, "nginx_hsts_max_age"
    ),
    "ipv6 switch not a boolean": Case(
        "nginx", {"nginx_listen_ipv6": "sometimes"}, VALIDATION_TASK, "nginx_listen_ipv6"
    ),
    "no upstream server": Case(
        "nginx",
        {"nginx_upstream_servers": []},
        "Check that the upstream servers are set",
        "nginx_upstream_servers",
        gather_facts=True,
    ),
    "missing database password": Case(
        "postgresql",
        {"postgresql_mattermost_password": None},
        VALIDATION_TASK,
        "missing required arguments: postgresql_mattermost_password",
    ),
    "port not a number": Case(
        "postgresql", {"postgresql_port": "fivefourthreetwo"}, VALIDATION_TASK, "postgresql_port"
    ),
    "unknown pg_hba connection type": Case(
        "postgresql",
        {"postgresql_allowed_clients_connection_type": "md5"},
        VALIDATION_TASK,
        "postgresql_allowed_clients_connection_type must be one of",
    ),
    "empty database password": Case(
        "postgresql",
        {"postgresql_mattermost_password": ""},
        "Check that the Mattermost password is set",
        "postgresql_mattermost_password must not be empty",
        gather_facts=True,
    ),
    "client not in CIDR notation": Case(
        "postgresql",
        {"postgresql_allowed_clients": ["app.example.com"]},
        "Check that the application host networks",
        'postgresql_allowed_clients: "app.example.com" not in CIDR notation',
        gather_facts=True,
    ),
    "provided mode without a certificate": Case(
        "nginx",
        {"nginx_tls_mode": "provided", "nginx_tls_key_content": "-----BEGIN PRIVATE KEY-----"},
        "Check that exactly one certificate and one key are provided",
        "nginx_tls_certificate_file",
        gather_facts=True,
    ),
    "letsencrypt mode without an email": Case(
        "nginx",
        {"nginx_tls_mode": "letsencrypt"},
        "Check that the Let's Encrypt account email is set",
        "nginx_letsencrypt_email",
        gather_facts=True,
    ),
}


def ansible_playbook() -> str:
    """ansible-playbook of the interpreter running the tests (the project's venv), else from PATH."""
    candidate = Path(sys.executable).with_name("ansible-playbook")
    found = str(candidate) if candidate.exists() else shutil.which("ansible-playbook")
    if not found:
        pytest.skip("ansible-playbook is not installed")
    return found


def run_role(tmp_path: Path, case: Case) -> tuple[int, dict[str, Any], str]:
    """Apply the role with the case's input; return the exit code, the JSON report and the raw output."""
    role_vars = {**GOOD_VARS[case.role], **case.overrides}
    role_vars = {name: value for name, value in role_vars.items() if value is not None}
    play = [
        {
            "name": f"Apply {case.role} with bad input",
            "hosts": "localhost",
            "gather_facts": case.gather_facts,
            # Facts come from this machine; the interpreter that runs Ansible surely works here.
            "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
            "roles": [{"role": case.role, "vars": role_vars}],
        }
    ]
    playbook = tmp_path / "playbook.yml"
    playbook.write_text(yaml.safe_dump(play), encoding="utf-8")
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
    }
    command = [ansible_playbook(), "-i", "localhost,", "-c", "local", "--check", str(playbook)]
    completed = subprocess.run(
        command, check=False, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    return completed.returncode, json.loads(completed.stdout), completed.stdout + completed.stderr


def task_results(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(task name without the role prefix, localhost result) for every task that ran, in order."""
    return [
        (task["task"]["name"].split(" : ", 1)[-1], task["hosts"]["localhost"])
        for play in report["plays"]
        for task in play["tasks"]
        if "localhost" in task["hosts"]
    ]


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_input_fails_before_any_change(tmp_path: Path, case: Case) -> None:
    returncode, report, output = run_role(tmp_path, case)

    assert returncode == 2, output
    stats = report["stats"]["localhost"]
    assert stats["failures"] == 1
    assert stats["changed"] == 0
    results = task_results(report)
    name, result = results[-1]
    assert name.startswith(case.failed_task)
    assert result["failed"] is True
    assert case.message in result["msg"]
    assert not any(result.get("changed") for _, result in results)
    # Nothing but the role's input checks ran before the failure.
    assert all(
        task.startswith((VALIDATION_TASK, "Gathering Facts", "Load the platform", "Check "))
        for task, _ in results
    ), [task for task, _ in results]
    assert SECRET not in output


# A security release changes exactly one line (scripts/bump-mattermost-version rewrites it), so the version
# is not repeated in the argument spec.
VERSION_LINES = {"mattermost_version"}


def role_files(role: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The role's defaults, its argument spec options (entry point main) and its README."""
    role_dir = ROOT / "roles" / role
    defaults = yaml.safe_load((role_dir / "defaults" / "main.yml").read_text(encoding="utf-8")) or {}
    specs = yaml.safe_load((role_dir / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))
    return defaults, specs["argument_specs"]["main"]["options"], (role_dir / "README.md").read_text("utf-8")


@pytest.mark.parametrize("role", GOOD_VARS)
def test_defaults_and_argument_specs_agree(role: str) -> None:
    """The spec's `default` is documentation only: it must say what defaults/main.yml really sets."""
    defaults, options, _ = role_files(role)
    required = {name for name, option in options.items() if option.get("required")}
    assert set(defaults) == set(options) - required
    assert required == set(GOOD_VARS[role])
    for name, value in defaults.items():
        if name in VERSION_LINES:
            assert "default" not in options[name], f"{name}: the version lives in defaults/main.yml only"
            continue
        assert options[name].get("default") == value, name
        assert options[name].get("type") and options[name].get("description"), name


@pytest.mark.parametrize("role", GOOD_VARS)
def test_readme_documents_every_variable(role: str) -> None:
    _, options, readme = role_files(role)
    variables = readme.split("## Role Variables", 1)[1].split("## Dependencies", 1)[0]
    missing = [name for name in options if f"{name}:" not in variables]
    assert not missing
