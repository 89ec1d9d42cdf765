"""The security baseline on a provisioned host: every control of module_utils/stockdb/baseline.py, one test each.

The controls run here through testinfra (the same code the module stockdb_baseline and
playbooks/baseline.yml run on hosts). A control the project does not meet yet is waived, with the
reason, in molecule/shared/group_vars/all.yml (`baseline_waivers`): it is expected to fail here, and
the test fails as soon as it passes, so the waiver is removed with the work that closes it.
"""

import shlex

import pytest
import yaml
from conftest import REPO
from stockdb import baseline

WAIVERS = yaml.safe_load((REPO / "molecule" / "shared" / "group_vars" / "all.yml").read_text()).get("baseline_waivers", {})


@pytest.fixture(scope="module")
def probe(host):
    def run(argv):
        result = host.run(" ".join(shlex.quote(a) for a in argv))
        return result.rc, result.stdout, result.stderr

    return baseline.Probe(run)


def test_baseline_waivers_name_real_controls_with_a_reason():
    assert set(WAIVERS) <= set(baseline.IDS)
    assert all(str(reason).strip() for reason in WAIVERS.values())


@pytest.mark.parametrize("control", [
    pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=f"waived: {WAIVERS[c.id]}")] if c.id in WAIVERS else [])
    for c in baseline.CONTROLS
])
def test_baseline_control(probe, control):
    assert control.check(probe) == [], f"{control.id} {control.title}: {control.rationale}"
