"""Helpers for the behaviour tests that run against a provisioned host.

The same tests run under Molecule (testinfra verifier, Ansible inventory) and against the
lab host (`make lab-verify`, i.e. pytest --hosts=docker://stockdb-lab). Everything is asked
of the live services on the host: Prometheus's HTTP API, MariaDB through its client.
"""

import json
import shlex
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((REPO / "files" / "grafana" / "dashboards").glob("*.json"))

_HTTP_GET = (
    "import json, sys, urllib.parse, urllib.request\n"
    "url = sys.argv[1]\n"
    "if len(sys.argv) > 2: url += '?' + urllib.parse.urlencode(json.loads(sys.argv[2]))\n"
    "print(urllib.request.urlopen(url, timeout=20).read().decode())\n"
)


def http_get_json(host, url, params=None):
    """GET a URL from inside the host (its loopback) and decode the JSON answer."""
    args = [url] + ([json.dumps(params)] if params else [])
    cmd = "python3 -c " + shlex.quote(_HTTP_GET) + " " + " ".join(shlex.quote(a) for a in args)
    return json.loads(host.check_output(cmd))


def prom_query(host, expr):
    """Run an instant PromQL query on the host's Prometheus; return the result list."""
    answer = http_get_json(host, "http://localhost:9090/api/v1/query", {"query": expr})
    assert answer["status"] == "success", f"query {expr!r} failed: {answer}"
    return answer["data"]["result"]


def sql(host, statement, defaults_file=None):
    """Run SQL with the mariadb client on the host; return the CommandResult (not checked)."""
    opts = f"--defaults-extra-file={shlex.quote(defaults_file)} " if defaults_file else ""
    return host.run(f"mariadb {opts}--batch --skip-column-names -e {shlex.quote(statement)}")


def select(host, expression):
    """The value of one SQL expression on the host's server (SELECT expression), as text; fails on an error."""
    rows = sql(host, f"SELECT {expression}")
    assert rows.rc == 0, rows.stderr
    return rows.stdout.strip()


def wait_for(predicate, timeout, interval=2.0, what="condition"):
    """Poll predicate() until it returns a truthy value, for at most timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="module")
def scraped(host):
    """Wait until Prometheus has scraped mysqld_exporter at least twice (rates need two samples)."""
    wait_for(lambda: prom_query(host, "count_over_time(mysql_up[1m]) >= 2"), 120, what="two scrapes of mysql_up")
    return host
