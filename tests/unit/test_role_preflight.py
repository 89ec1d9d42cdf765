"""Role boundaries: what a role refuses, what it reads, and who may write what it creates.

- Roles refuse to run without their secrets or package source, naming what is missing. Each case
  runs the real role with ansible-playbook against this machine (connection local); the preflight
  assertion comes first, so nothing is installed.
- Roles read only their own variables (the tier playbooks pass values between them).
- Directories that root's jobs write into are not writable by the project's unprivileged account.
"""

import json
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

BIN = Path(sys.executable).parent


def play(tmp_path, role, extra_vars):
    playbook = tmp_path / "play.yml"
    playbook.write_text(f"- hosts: localhost\n  gather_facts: true\n  roles:\n    - role: {role}\n")
    args = [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)]
    for key, value in extra_vars.items():
        args += ["-e", json.dumps({key: value}) if isinstance(value, dict) else f"{key}={value}"]
    return subprocess.run(args, capture_output=True, text=True, cwd=REPO,
                          env={"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(tmp_path),
                               "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_ROLES_PATH": str(REPO / "roles")})


# Valid passwords of the four accounts every database host has.
MARIADB_SECRETS = {f"mariadb_{name}_password": "x" * 16 for name in ("admin", "app", "backup", "exporter")}


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
    ("mariadb", {**MARIADB_SECRETS, "mariadb_chaos_account": "true"},
     "mariadb_chaos_password is not set (or shorter than 12 characters, or still CHANGE-ME,"),
    ("mariadb", {**MARIADB_SECRETS, "mariadb_report_password": "short"},
     "mariadb_report_password is not set (or shorter than 12 characters, or still CHANGE-ME,"),
    ("mariadb", {**MARIADB_SECRETS, "mariadb_extra_port": "3306"},
     "mariadb_extra_port=3306 must be 0 (off) or a TCP port other than mariadb_port=3306"),
    ("mariadb", {**MARIADB_SECRETS, "mariadb_report_max_statement_time": "0"},
     "mariadb_report_max_statement_time=0 and"),
    ("mariadb", {**MARIADB_SECRETS, "mariadb_tls": "false", "mariadb_app_host": "10.0.0.%"},
     "mariadb_remote_require_tls is on and accounts log in from the network (mariadb_app_host=10.0.0.%,"),
    ("mariadb", MARIADB_SECRETS, "mariadb_encryption is on, so mariadb_encryption_keys must map key ids"),
    ("mariadb", {**MARIADB_SECRETS, "mariadb_encryption_keys": {"2": "ab" * 32}, "mariadb_encryption_key_id": "2"},
     "64 hexadecimal digits, key 1 among them"),
    ("mariadb", {**MARIADB_SECRETS, "mariadb_encryption_keys": {"1": "ab" * 31}}, "mariadb_encryption is on, so"),
    ("mariadb", {**MARIADB_SECRETS, "mariadb_encryption_keys": {"1": "ab" * 32}, "mariadb_encryption_key_id": "3"},
     "mariadb_encryption_key_id=3 must be one of the ids"),
    # valid keys (either case of hex digits) pass on to the next check
    ("mariadb", {**MARIADB_SECRETS, "mariadb_encryption_keys": {"1": "AB" * 32, "2": "cd" * 32},
                 "mariadb_encryption_key_id": "2"},
     "TLS (mariadb_tls) needs either mariadb_tls_cert"),
    ("mysqld_exporter", {}, "mysqld_exporter_password is not set (playbooks/site_database.yml passes mariadb_exporter_password)"),
    ("alertmanager", {"alertmanager_basic_auth_username": "prometheus"},
     "alertmanager_basic_auth_username and alertmanager_basic_auth_password go together"),
    ("alertmanager", {"alertmanager_basic_auth_username": "prometheus", "alertmanager_basic_auth_password": "short"},
     "alertmanager_basic_auth_username and alertmanager_basic_auth_password go together"),
    ("alertmanager", {"alertmanager_listen_address": "0.0.0.0:9093"},
     "alertmanager_listen_address 0.0.0.0:9093 lets other hosts use Alertmanager's API"),
    ("alertmanager", {"alertmanager_listen_address": ":9093"},
     "alertmanager_listen_address :9093 lets other hosts use Alertmanager's API"),
    ("alertmanager", {"alertmanager_tls_cert_file": "/etc/ssl/alertmanager.crt"},
     "alertmanager_tls_cert_file and alertmanager_tls_key_file go together"),
    ("backup", {"backup_encrypt_key": "short-key"}, "backup_encrypt_key must be empty (no encryption) or a generated secret"),
])
def test_missing_secret_or_source_stops_the_role(tmp_path, role, extra_vars, message):
    result = play(tmp_path, role, extra_vars)
    assert result.returncode != 0
    assert message in result.stdout, result.stdout[-2000:]


# --- Roles read only their own variables -------------------------------------------------------
# What one role needs of another is passed as a role parameter by the tier playbooks
# (playbooks/site_*.yml), so an inventory override reaches every user of a value and a role run
# on its own never picks up a stale default of another.

ROLES_DIR = REPO / "roles"
ROLES = sorted(p.name for p in ROLES_DIR.iterdir() if (p / "tasks").is_dir())
JINJA = re.compile(r"{{(.*?)}}|{%(.*?)%}", re.S)
CONDITIONS = ("when", "that", "changed_when", "failed_when", "until")


def _conditions(node):
    """The bare Jinja expressions of task keywords (when:, that:, ...) anywhere in a task file."""
    if isinstance(node, list):
        for item in node:
            yield from _conditions(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in CONDITIONS:
                yield from (v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str))
            else:
                yield from _conditions(value)


def foreign_variables(roles_dir, role):
    """'file: variable' for each variable of another role that the role's files read."""
    others = "|".join(re.escape(r) for r in sorted(p.name for p in roles_dir.iterdir()) if r != role)
    variable = re.compile(rf"(?<![\w.'\"-])_{{0,2}}(?:{others})_\w+")
    found = set()
    for path in sorted((roles_dir / role).rglob("*")):
        if not path.is_file() or path.suffix not in (".yml", ".j2"):
            continue
        text = path.read_text()
        expressions = [m.group(1) or m.group(2) for m in JINJA.finditer(text)]
        if path.parent.name in ("tasks", "handlers"):
            expressions += list(_conditions(yaml.safe_load(text)))
        found |= {f"{path.relative_to(roles_dir)}: {name}" for e in expressions for name in variable.findall(e)}
    return sorted(found)


@pytest.mark.parametrize("role", ROLES)
def test_role_reads_no_other_roles_variables(role):
    assert foreign_variables(ROLES_DIR, role) == []


def test_a_cross_role_default_is_found(tmp_path):
    roles = tmp_path / "roles"
    for name in ("grafana", "prometheus"):
        shutil.copytree(ROLES_DIR / name, roles / name)
    datasource = roles / "grafana/templates/etc/grafana/provisioning/datasources/stockdb.yml.j2"
    datasource.write_text(datasource.read_text().replace(
        "grafana_prometheus_scrape_interval", "prometheus_scrape_interval | default('15s')"))
    tasks = roles / "grafana/tasks/main.yml"
    tasks.write_text(tasks.read_text() + "\n- name: Probe\n  ansible.builtin.debug: {}\n  when: _prometheus_rules_dir\n")
    assert foreign_variables(roles, "grafana") == [
        "grafana/tasks/main.yml: _prometheus_rules_dir",
        "grafana/templates/etc/grafana/provisioning/datasources/stockdb.yml.j2: prometheus_scrape_interval",
    ]


# --- Who may write what root's jobs read -------------------------------------------------------

def _file_entries(path):
    """The entries written out in the stockdb_files tasks of a task file, by path."""
    return {e["path"]: e for t in yaml.safe_load(path.read_text()) if isinstance(t.get("stockdb_files", {}).get("files"), list)
            for e in t["stockdb_files"]["files"]}


def test_textfile_metrics_are_writable_by_root_only():
    """The backup and health jobs (root) write the metrics; the stockdb account must not forge them."""
    entry = _file_entries(ROLES_DIR / "node_exporter/tasks/main.yml")["{{ node_exporter_textfile_dir }}"]
    assert (entry["state"], entry["owner"], entry["group"]) == ("directory", "root", "root")
    assert not int(entry["mode"], 8) & (stat.S_IWGRP | stat.S_IWOTH), entry["mode"]


def test_directories_root_writes_into_belong_to_root():
    """Logs, the home (ack log, state) and credentials: the account may read, not plant files or symlinks."""
    entries = _file_entries(ROLES_DIR / "common/tasks/main.yml")
    for path in ("{{ _common_home }}", "{{ common_log_dir }}", "{{ common_config_dir }}"):
        assert entries[path]["state"] == "directory" and entries[path]["owner"] == "root", path
        assert not int(entries[path]["mode"], 8) & (stat.S_IWGRP | stat.S_IWOTH), entries[path]
