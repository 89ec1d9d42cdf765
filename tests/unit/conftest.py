"""Shared fixtures of the unit tests: the repository root, a role-variable renderer, operations settings."""

import os
import sys
from pathlib import Path

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar, trust_as_template

REPO = Path(__file__).resolve().parents[2]
# Nothing compiled lands in module_utils/stockdb, which roles/backup copies whole to the hosts.
sys.dont_write_bytecode = True
# The collections of the ansible package (community.general's filters), found as a play finds them.
init_plugin_loader()


def _trusted(value):
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, list):
        return [_trusted(v) for v in value]
    if isinstance(value, dict):
        return {k: _trusted(v) for k, v in value.items()}
    return value


class RoleVars:
    """A role's defaults and vars, templated by Ansible's own Templar (as in a play)."""

    def __init__(self, role, **overrides):
        variables = {}
        for part in ("defaults", "vars"):
            path = REPO / "roles" / role / part / "main.yml"
            if path.is_file():
                variables.update(_trusted(yaml.safe_load(path.read_text()) or {}))
        variables.update(overrides)
        self.variables = variables
        loader = DataLoader()
        loader.set_basedir(str(REPO / "roles" / role / "templates"))  # where a template's {% include %} looks
        self._templar = Templar(loader=loader, variables=variables)

    def __getitem__(self, name):
        return self._templar.template(self.variables[name])

    def render(self, template_path):
        """Render one of the role's templates with these variables."""
        text = (REPO / template_path).read_text()
        return self._templar.template(trust_as_template(text))


@pytest.fixture
def role_vars():
    return RoleVars


@pytest.fixture
def settings(tmp_path):
    """Settings of the operations package with every directory under tmp_path; the log, metrics and data
    directories exist, the backup, verify and state directories do not (the code makes them)."""
    from stockdb.ops import settings as ops_settings

    s = ops_settings.load(None, dict(backup_dir=str(tmp_path / "backup"), datadir=str(tmp_path / "mysql"),
                                     verify_dir=str(tmp_path / "verify"), state_dir=str(tmp_path / "state"),
                                     metrics_dir=str(tmp_path / "textfile"), log_dir=str(tmp_path / "log"),
                                     alert_log=str(tmp_path / "log" / "alerts.log"), lock_timeout=1,
                                     source="db1", host_name="db1"))
    for key in ("metrics_dir", "log_dir", "datadir"):
        os.makedirs(s[key])
    return s
