"""The rendered Alertmanager configuration, with and without the optional receivers, passes amtool."""

import shutil
import subprocess

import pytest
import yaml

TEMPLATE = "roles/alertmanager/templates/etc/prometheus/alertmanager.yml.j2"
AMTOOL = shutil.which("amtool")


def render(role_vars, **overrides):
    v = role_vars("alertmanager", ansible_managed="managed", ansible_facts={"fqdn": "mon1.example.internal"},
                  **overrides)
    return v.render(TEMPLATE)


def amtool_check(text, tmp_path):
    path = tmp_path / "alertmanager.yml"
    path.write_text(text)
    return subprocess.run([AMTOOL, "check-config", str(path)], capture_output=True, text=True)


def test_default_sends_everything_to_the_alert_log_only(role_vars):
    config = yaml.safe_load(render(role_vars))
    (receiver,) = config["receivers"]
    assert config["route"]["receiver"] == receiver["name"]
    assert receiver["webhook_configs"] == [{"url": "http://127.0.0.1:9095/", "send_resolved": True}]
    assert "slack_configs" not in receiver and "email_configs" not in receiver


def test_slack_email_and_webhooks_are_added_beside_the_alert_log(role_vars):
    config = yaml.safe_load(render(
        role_vars, alertmanager_slack_webhook_url="https://hooks.example.internal/T000/B000/XXX",
        alertmanager_email_to="dba-oncall@example.internal",
        alertmanager_webhook_urls=["https://tickets.example.internal/hook"]))
    receiver = config["receivers"][0]
    assert [w["url"] for w in receiver["webhook_configs"]] == ["http://127.0.0.1:9095/", "https://tickets.example.internal/hook"]
    assert receiver["slack_configs"][0]["channel"] == "#db-alerts"
    assert receiver["email_configs"] == [{"to": "dba-oncall@example.internal", "send_resolved": True}]
    assert config["global"]["smtp_from"] == "alertmanager@mon1.example.internal"


@pytest.mark.skipif(AMTOOL is None, reason="amtool comes from `make unit` (tests/tools/prometheus_tools.sh)")
@pytest.mark.parametrize("overrides", [
    {},
    {"alertmanager_slack_webhook_url": "https://hooks.example.internal/T000/B000/XXX",
     "alertmanager_email_to": "dba-oncall@example.internal",
     "alertmanager_webhook_urls": ["https://tickets.example.internal/hook"]},
], ids=["alert-log-only", "all-receivers"])
def test_amtool_accepts_the_rendered_configuration(role_vars, tmp_path, overrides):
    result = amtool_check(render(role_vars, **overrides), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
