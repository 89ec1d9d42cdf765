"""Role interfaces: specs equal to defaults (tests/tools/check_argspecs.py), READMEs generated from them."""

import shutil
import subprocess
import sys

from conftest import REPO

CHECK = REPO / "tests/tools/check_argspecs.py"


def run(roles_dir):
    return subprocess.run([sys.executable, str(CHECK), str(roles_dir)], capture_output=True, text=True)


def test_repository_roles_pass():
    result = run(REPO / "roles")
    assert result.returncode == 0, result.stderr


def test_drift_is_reported_by_name(tmp_path):
    role = tmp_path / "roles" / "demo"
    shutil.copytree(REPO / "roles" / "node_exporter", role)
    defaults = role / "defaults" / "main.yml"
    defaults.write_text(defaults.read_text() + "node_exporter_new_option: 1\nuncommented: true\n")
    result = run(tmp_path / "roles")
    assert result.returncode == 1
    assert "node_exporter_new_option is in defaults/main.yml but not in meta/argument_specs.yml" in result.stderr
    assert "uncommented in defaults/main.yml has no comment above it" in result.stderr


def test_role_readmes_are_generated_from_the_current_specs():
    result = subprocess.run([sys.executable, str(REPO / "tests/tools/role_docs.py"), str(REPO / "roles"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
