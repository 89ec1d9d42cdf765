"""The jobs' priorities (module_utils/stockdb/ops/host.py): trading first.

The first cases run a job in a child process on the host's real kernel, importing the package as the
host's stockdb-ops does (PYTHONPATH), so the test runner keeps its own priority; the last ones fake the
kernel's answers to /proc/self/autogroup writes (its rate limit, a refusal).
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


@pytest.fixture
def group(monkeypatch):
    """set_autogroup_nice's view of the kernel, faked: this process leads its session, its group is at
    nice 0, and `writes` says what each write to /proc/self/autogroup meets (an exception, or None: taken)."""
    state = dict(nice=0, writes=[], tries=0)
    real_open = os.open

    def fake_open(path, flags, *args):
        if path != host.AUTOGROUP:
            return real_open(path, flags, *args)
        state["tries"] += 1
        outcome = state["writes"].pop(0) if state["writes"] else None
        if outcome:
            raise outcome
        return real_open(os.devnull, flags)

    monkeypatch.setattr(host.os, "getsid", lambda pid: os.getpid())
    monkeypatch.setattr(host.os, "open", fake_open)
    monkeypatch.setattr(host, "autogroup_nice", lambda: state["nice"])
    monkeypatch.setattr(host.time, "sleep", lambda seconds: None)
    return state


def test_the_kernel_s_rate_limit_is_waited_out_and_a_refusal_leaves_the_job_as_it_is(group):
    group["writes"] = [BlockingIOError(), BlockingIOError()]  # EAGAIN twice, then taken
    assert host.set_autogroup_nice(10) is True and group["tries"] == 3
    group.update(writes=[BlockingIOError()] * 3, tries=0)  # the rate limit every time: given up after three
    assert host.set_autogroup_nice(10) is False and group["tries"] == 3
    group.update(writes=[PermissionError()], tries=0)
    assert host.set_autogroup_nice(10) is False and group["tries"] == 1
    group.update(nice=10, tries=0)  # already there: no write
    assert host.set_autogroup_nice(10) is True and group["tries"] == 0


def test_cpu_idle_restores_the_policy_and_the_group_when_its_block_fails(group, monkeypatch):
    values = []
    monkeypatch.setattr(host, "set_autogroup_nice", lambda value: values.append(value) or True)
    group["nice"] = 10
    policy = os.sched_getscheduler(0)
    with pytest.raises(RuntimeError), host.cpu_idle():
        assert os.sched_getscheduler(0) == os.SCHED_IDLE
        raise RuntimeError("the block failed")
    assert os.sched_getscheduler(0) == policy
    assert values == [19, 10]
