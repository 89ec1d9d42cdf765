"""Roles refuse to run without their secrets or package source, naming what is missing.

Each case runs the real role with ansible-playbook against this machine (connection local);
the preflight assertion is the first task, so nothing is installed.
"""

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

BIN = Path(sys.executable).parent


def play(tmp_path, role, extra_vars):
    playbook = tmp_path / "play.yml"
    playbook.write_text(f"- hosts: localhost\n  gather_facts: true\n  roles:\n    - role: {role}\n")
    args = [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)]
    for key, value in extra_vars.items():
        args += ["-e", f"{key}={value}"]
    return subprocess.run(args, capture_output=True, text=True, cwd=REPO,
                          env={"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(tmp_path),
                               "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_ROLES_PATH": str(REPO / "roles")})


@pytest.mark.parametrize(("role", "extra_vars", "message"), [
    ("grafana", {"grafana_install_package": "true"}, "grafana: no package source"),
    ("grafana", {"grafana_apt_repo_url": "https://mirror.example.internal/grafana",
                 "grafana_apt_key_url": "https://mirror.example.internal/grafana/gpg.key"},
     "grafana_admin_password is not set"),
    ("mariadb", {}, "mariadb_admin_password is not set (or shorter than 12 characters, or still CHANGE-ME,"),
    ("mariadb", {"mariadb_admin_password": "CHANGE-ME-please", "mariadb_app_password": "x" * 16,
                 "mariadb_backup_password": "x" * 16, "mariadb_exporter_password": "x" * 16},
     "mariadb_admin_password is not set (or shorter than 12 characters, or still CHANGE-ME,"),
    ("mariadb", {"mariadb_admin_password": "secret#comment1", "mariadb_app_password": "x" * 16,
                 "mariadb_backup_password": "x" * 16, "mariadb_exporter_password": "x" * 16},
     "mariadb_admin_password is not set (or shorter than 12 characters, or still CHANGE-ME,"),
    ("mysqld_exporter", {}, "mysqld_exporter_password (default: mariadb_exporter_password) is not set"),
    ("backup", {"backup_encrypt_key": "short-key"}, "backup_encrypt_key must be empty (no encryption) or a generated secret"),
])
def test_missing_secret_or_source_stops_the_role(tmp_path, role, extra_vars, message):
    result = play(tmp_path, role, extra_vars)
    assert result.returncode != 0
    assert message in result.stdout, result.stdout[-2000:]
