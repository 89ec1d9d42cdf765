"""Shared fixtures of the unit tests: the repository root and a role-variable renderer."""

import sys
from pathlib import Path

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

REPO = Path(__file__).resolve().parents[2]
# Nothing compiled lands in module_utils/stockdb, which roles/backup copies whole to the hosts.
sys.dont_write_bytecode = True


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
        self._templar = Templar(loader=DataLoader(), variables=variables)

    def __getitem__(self, name):
        return self._templar.template(self.variables[name])

    def render(self, template_path):
        """Render one of the role's templates with these variables."""
        text = (REPO / template_path).read_text()
        return self._templar.template(trust_as_template(text))


@pytest.fixture
def role_vars():
    return RoleVars
