"""tests/lab/example_inventory.py: an inventory made from the production example, as a user would."""

import subprocess
import sys

import yaml
from conftest import REPO

SCRIPT = REPO / "tests" / "lab" / "example_inventory.py"
VAULT = str(REPO / ".venv" / "bin" / "ansible-vault") if (REPO / ".venv" / "bin" / "ansible-vault").exists() else "ansible-vault"


def make(tmp_path, *hosts, example=REPO / "inventory" / "production.example", extra=()):
    argv = [sys.executable, str(SCRIPT), "--example", str(example), "--dest", str(tmp_path / "inv"),
            "--key", "/keys/id", "--known-hosts", str(tmp_path / "known_hosts"), "--vault-pass", str(tmp_path / "pass"),
            "--secrets", str(tmp_path / "secrets"), "--ansible-vault", VAULT, *extra]
    for spec in hosts:
        argv += ["--host", spec]
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def test_hosts_groups_host_vars_and_an_encrypted_vault(tmp_path):
    run = make(tmp_path, "mariadb=db1:10.9.0.11", "mariadb=db2:10.9.0.12", "monitoring=mon1:10.9.0.21",
               extra=["--host-var", "mariadb_memory_mb=1536", "--host-var", "grafana_install_package=false"])
    assert run.returncode == 0, run.stderr
    keys = run.stdout.split()
    assert "vault_mariadb_app_password" in keys and "vault_mariadb_encryption_key_1" in keys
    inventory = yaml.safe_load((tmp_path / "inv" / "hosts.yml").read_text())["all"]
    assert inventory["children"]["mariadb"]["hosts"] == {"db1": {"ansible_host": "10.9.0.11"},
                                                         "db2": {"ansible_host": "10.9.0.12"}}
    assert inventory["children"]["monitoring"]["hosts"] == {"mon1": {"ansible_host": "10.9.0.21"}}
    assert inventory["children"]["chaos_targets"]["hosts"] == {}  # opt-in stays empty, as in the example
    assert inventory["vars"]["ansible_ssh_private_key_file"] == "/keys/id"
    assert yaml.safe_load((tmp_path / "inv" / "host_vars" / "db2.yml").read_text()) == {
        "mariadb_memory_mb": 1536, "grafana_install_package": False}
    vault = tmp_path / "inv" / "group_vars" / "all" / "vault.yml"
    assert vault.read_text().startswith("$ANSIBLE_VAULT")
    values = (tmp_path / "secrets").read_text().split()
    assert len(values) == len(keys) and all(len(v) == 64 for v in values)
    assert not any(v in vault.read_text() for v in values)
    clear = subprocess.run([VAULT, "view", "--vault-password-file", str(tmp_path / "pass"), str(vault)],
                           capture_output=True, text=True, check=True).stdout
    assert all(f'"{v}"' in clear for v in values)
    assert (tmp_path / "pass").stat().st_mode & 0o077 == 0


def test_one_host_gets_its_own_setting_on_top_of_the_common_ones(tmp_path):
    run = make(tmp_path, "mariadb=db1:10.9.0.11", "mariadb=db2:10.9.0.12",
               extra=["--host-var", "mariadb_memory_mb=1536", "--one-host-var", "db2:mariadb_replication_delay=60"])
    assert run.returncode == 0, run.stderr
    host_vars = tmp_path / "inv" / "host_vars"
    assert yaml.safe_load((host_vars / "db1.yml").read_text()) == {"mariadb_memory_mb": 1536}
    assert yaml.safe_load((host_vars / "db2.yml").read_text()) == {"mariadb_memory_mb": 1536, "mariadb_replication_delay": 60}


def test_a_setting_for_a_host_not_given_or_without_its_host_is_named_and_nothing_is_made(tmp_path):
    run = make(tmp_path, "mariadb=db1:10.9.0.11", extra=["--one-host-var", "db9:mariadb_replication_delay=60"])
    assert run.returncode != 0 and "names hosts ['db9'] that no --host gives" in run.stderr
    assert not (tmp_path / "inv").exists()
    run = make(tmp_path, "mariadb=db1:10.9.0.11", extra=["--one-host-var", "mariadb_replication_delay=60"])
    assert run.returncode != 0 and "is not HOST:NAME=VALUE" in run.stderr


def test_an_unknown_group_is_named_and_nothing_is_made(tmp_path):
    run = make(tmp_path, "databases=db1:10.9.0.11")
    assert run.returncode != 0 and "no group(s) ['databases']" in run.stderr
    assert not (tmp_path / "inv").exists()


def test_a_vault_variable_the_template_lacks_is_named(tmp_path):
    example = tmp_path / "example"
    subprocess.run(["cp", "-r", str(REPO / "inventory" / "production.example"), str(example)], check=True)
    (example / "group_vars" / "all" / "extra.yml").write_text("---\nmariadb_report_password: '{{ vault_report_pw }}'\n")
    run = make(tmp_path, "mariadb=db1:10.9.0.11", example=example)
    assert run.returncode != 0 and "vault_report_pw used by the inventory but not in" in run.stderr
    assert not (tmp_path / "inv").exists()


def test_a_bad_host_spec_is_named(tmp_path):
    run = make(tmp_path, "mariadb=db1")
    assert run.returncode != 0 and "'mariadb=db1' is not GROUP=NAME:ADDRESS" in run.stderr
