"""What share of a busy CPU a job takes from a server in another session (autogroups, sched(7)).

Two busy loops pinned to the same CPU: a "server" at nice 0 in a session of its own, as MariaDB's unit
runs, and a "job" set up as one of the variants below, also in a session of its own, as the backup
job's unit runs (systemd starts every unit with setsid). Prints the job's share of the CPU, min / median
/ max over the rounds. Run it on a host (a container's processes sit in the container's cgroup, where
autogroups do not apply), from the repository's root:

    python3 tests/tools/cpu_share.py [ROUNDS] [SECONDS]
"""

import os
import statistics
import subprocess
import sys
import time

LOOP = "while True: pass\n"
SETUP = "import os\nfrom stockdb.ops import host\n"
VARIANTS = {
    "the job at nice 10 only": SETUP + "os.nice(10)\n" + LOOP,
    "the job after host.lower_priority()": SETUP + "host.lower_priority()\n" + LOOP,
    "the job inside host.cpu_idle()": SETUP + "host.lower_priority()\nwith host.cpu_idle():\n    " + LOOP,
}
LEADER = "import subprocess, sys\nprocs = [subprocess.Popen([sys.executable, '-c', c]) for c in sys.argv[1:]]\n" \
         "[p.wait() for p in procs]\n"
CONTROL = "the job at nice 10 only, in the server's session"


def stat(pid):
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().rsplit(")", 1)[1].split()


def ticks(pid):
    fields = stat(pid)
    return int(fields[11]) + int(fields[12])


def nice(pid):
    return int(stat(pid)[16])


def share(job_code, cpu, env, seconds, same_session=False):
    """The job's share of the CPU over `seconds`, after a second to settle."""
    pin = f"import os\nos.sched_setaffinity(0, {{{cpu}}})\n"
    procs = []
    try:
        if same_session:  # one session leader starting both, as two processes of one service would be
            procs.append(subprocess.Popen([sys.executable, "-c", LEADER, pin + LOOP, pin + job_code], env=env,
                                          start_new_session=True))
            time.sleep(1)
            leader = procs[0].pid
            pids = [int(p) for p in open(f"/proc/{leader}/task/{leader}/children").read().split()]
        else:
            procs = [subprocess.Popen([sys.executable, "-c", pin + code], env=env, start_new_session=True)
                     for code in (LOOP, job_code)]
            time.sleep(1)
            pids = [p.pid for p in procs]
        server, job = sorted(pids, key=nice)  # the job is the niced one
        s0, j0 = ticks(server), ticks(job)
        time.sleep(seconds)
        s, j = ticks(server) - s0, ticks(job) - j0
    finally:  # never leave a busy loop behind
        for p in procs:
            os.killpg(p.pid, 9)
            p.wait()
    return j / (s + j)


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 5
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), "..", "..", "module_utils"))
    cpu = max(os.sched_getaffinity(0))
    with open("/proc/sys/kernel/sched_autogroup_enabled") as handle:
        print(f"autogroups enabled: {handle.read().strip()}; CPU {cpu}; {rounds} rounds of {seconds} s")
    with open("/proc/self/cgroup") as handle:  # autogroups apply in the root's CPU group only
        print("this process's cgroups:", " ".join(line.strip() for line in handle if "cpu" in line or line[:3] == "0::"))
    variants = list(VARIANTS.items()) + [(CONTROL, VARIANTS["the job at nice 10 only"])]
    figures = {name: [] for name, _ in variants}
    for _ in range(rounds):  # the variants in turn, so drift spreads over all of them
        for name, code in variants:
            figures[name].append(share(code, cpu, env, seconds, same_session=name == CONTROL))
    for name, shares in figures.items():
        print(f"{name:50} job's share {min(shares):.3f} / {statistics.median(shares):.3f} / {max(shares):.3f}")


if __name__ == "__main__":
    main()
