"""`make lab-down` / `make clean` (tests/lab/lab.sh down, rm, status) only remove what exists.

They run here with a PATH holding no Docker (or a Docker whose engine does not answer) and
stand-ins for apt-get, sudo, dockerd and debootstrap that record being called: cleaning up must
never install or start anything, and must say that there was nothing to remove.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "tests" / "lab" / "lab.sh"
INSTALLERS = ("apt-get", "sudo", "dockerd", "debootstrap", "sh")


def _stub(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/bash\n{body}\n")
    path.chmod(0o755)


@pytest.fixture
def machine(tmp_path):
    """A PATH with bash and the few tools lab.sh needs; installers only record their calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "id", "awk", "cat"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    calls = tmp_path / "calls"
    calls.touch()
    for tool in INSTALLERS:
        _stub(bin_dir / tool, f'echo "{tool} $*" >> "{calls}"; exit 1')

    def run(*argv, docker=None):
        if docker is not None:
            _stub(bin_dir / "docker", f'echo "docker $*" >> "{calls}"; {docker}')
        result = subprocess.run(
            argv,
            cwd=REPO,
            env={"PATH": str(bin_dir), "HOME": str(tmp_path), "LAB_DISK_DIR": str(tmp_path / "disks")},
            capture_output=True,
            text=True,
            timeout=20,
        )
        return result, calls.read_text().splitlines()

    return run


def _installs(calls):
    return [c for c in calls if c.split()[0] in INSTALLERS]


@pytest.mark.parametrize("command", [("down",), ("rm", "stockdb-prodtest")])
def test_without_docker_nothing_is_installed(machine, command):
    result, calls = machine("/bin/bash", str(LAB), *command)
    assert result.returncode == 0, result.stderr
    assert "Docker is not installed: nothing to remove" in result.stderr
    assert _installs(calls) == []


def test_with_a_stopped_engine_nothing_is_started(machine):
    result, calls = machine("/bin/bash", str(LAB), "down", docker="exit 1")
    assert result.returncode == 0, result.stderr
    assert "not answering: nothing removed" in result.stderr
    assert _installs(calls) == []
    assert calls == ["docker info"]


def test_status_without_docker(machine):
    result, calls = machine("/bin/bash", str(LAB), "status")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "docker: not installed"
    assert calls == []


def test_make_lab_down_without_docker(machine):
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    result, calls = machine(make, "--no-print-directory", "lab-down")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nothing to remove" in result.stderr
    assert _installs(calls) == []
