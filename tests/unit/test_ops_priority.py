"""The jobs' priorities (module_utils/stockdb/ops/host.py): trading first, on the host's real kernel.

Each case runs in a child process, importing the package as the host's stockdb-ops does (PYTHONPATH),
so the test runner keeps its own priority.
"""

import os
import subprocess
import sys

import pytest
from conftest import REPO
from stockdb.ops import host

# what a job does with its priorities, printed: nice, OOM score, its autogroup's nice before, inside and
# after cpu_idle()
JOB = """
import os
from stockdb.ops import host
host.lower_priority()
job = host.autogroup_nice()
with host.cpu_idle():
    idle = host.autogroup_nice()
print(os.nice(0), open("/proc/self/oom_score_adj").read().strip(), job, idle, host.autogroup_nice())
"""


def run_job(**popen):
    env = dict(os.environ, PYTHONPATH=str(REPO / "module_utils"))
    return subprocess.run([sys.executable, "-c", JOB], capture_output=True, text=True, check=True, env=env,
                          **popen).stdout.split()


def test_jobs_run_niced_and_first_in_line_for_the_oom_killer():
    nice, oom = run_job()[:2]
    assert (nice, oom) == ("10", "1000")


@pytest.mark.skipif(host.autogroup_nice() is None, reason="this kernel has no autogroups")
def test_a_job_leading_its_session_lowers_its_autogroup_and_one_run_from_a_shell_does_not():
    # as systemd starts a unit: in a session of its own, whose autogroup competes with MariaDB's
    assert run_job(start_new_session=True)[2:] == ["10", "19", "10"]
    # from a shell (here: the test runner's session), the session's autogroup is left alone
    mine = str(host.autogroup_nice())
    assert run_job()[2:] == [mine, mine, mine]
    assert str(host.autogroup_nice()) == mine
