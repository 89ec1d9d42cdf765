"""Alertmanager as the role renders it: the configuration with and without the optional receivers
(checked by amtool), where it listens, its web config (TLS, basic auth; checked by promtool), where
the alert log goes, and how site_monitoring.yml points Prometheus at it."""

import shlex
import shutil
import subprocess

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from conftest import REPO, RoleVars

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


def test_critical_alerts_take_the_fast_route_and_warnings_a_slower_first_notice(role_vars):
    config = yaml.safe_load(render(role_vars))
    route = config["route"]
    assert (route["group_wait"], route["group_interval"]) == ("10s", "30s")
    (critical,) = route["routes"]
    assert critical == {"matchers": ['severity="critical"'], "group_wait": "5s", "group_interval": "30s"}
    # the same receiver and grouping: inherited from the top route
    assert "receiver" not in critical and "group_by" not in critical


def test_the_fast_route_follows_its_variables(role_vars):
    config = yaml.safe_load(render(role_vars, alertmanager_critical_group_wait="2s",
                                   alertmanager_critical_group_interval="1m"))
    assert config["route"]["routes"][0]["group_wait"] == "2s"
    assert config["route"]["routes"][0]["group_interval"] == "1m"


@pytest.mark.skipif(AMTOOL is None, reason="amtool comes from `make unit` (tests/tools/prometheus_tools.sh)")
@pytest.mark.parametrize(("severity", "fast"), [("critical", True), ("warning", False)])
def test_amtool_routes_only_critical_alerts_the_fast_way(role_vars, tmp_path, severity, fast):
    path = tmp_path / "alertmanager.yml"
    path.write_text(render(role_vars))
    result = subprocess.run([AMTOOL, "config", "routes", "test", f"--config.file={path}", "--tree", "--verify.receivers=stockdb",
                             "alertname=MariaDBDown", f"severity={severity}"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ('{severity="critical"}' in result.stdout) is fast, result.stdout


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


# --- Where Alertmanager listens, and who may use it ---------------------------------------------

ARGS = "roles/alertmanager/templates/etc/default/prometheus-alertmanager.j2"
WEB = "roles/alertmanager/templates/etc/prometheus/alertmanager-web.yml.j2"
UNIT = "roles/alertmanager/templates/etc/systemd/system/stockdb-alertlog.service.j2"
LOGROTATE = "roles/alertmanager/templates/etc/logrotate.d/stockdb-alerts.j2"
PROMETHEUS = "roles/prometheus/templates/etc/prometheus/prometheus.yml.j2"
PROMTOOL = shutil.which("promtool")
# A bcrypt hash as the role makes it on the host (python3-bcrypt); promtool checks its form.
HASH = "$2b$10$abcdefghijklmnopqrstuuJ3Pq0x5sFQnP1Oe3lVRGa0DR4P8k5Cm"
AUTH = {"alertmanager_basic_auth_username": "prometheus", "alertmanager_basic_auth_password": "x" * 24,
        "__alertmanager_password_hash": {"stdout": HASH}}


def arguments(text):
    return shlex.split(text.split('ARGS="', 1)[1].rsplit('"', 1)[0].replace("\\\n", " "))


def render_file(role_vars, template, **overrides):
    return role_vars("alertmanager", ansible_managed="managed", **overrides).render(template)


def test_alertmanager_listens_on_loopback_with_its_web_config_by_default(role_vars):
    args = arguments(render_file(role_vars, ARGS))
    assert "--web.listen-address=127.0.0.1:9093" in args
    assert "--web.config.file=/etc/prometheus/alertmanager-web.yml" in args
    assert "--cluster.listen-address=" in args  # no gossip port either


@pytest.mark.parametrize("interval", [None, "30s"])
def test_alertmanager_writes_its_notification_log_every_minute_by_default(role_vars, interval):
    # what it read at start after an unclean stop is at most this old (defaults/main.yml says why)
    overrides = {} if interval is None else {"alertmanager_maintenance_interval": interval}
    args = arguments(render_file(role_vars, ARGS, **overrides))
    assert f"--data.maintenance-interval={interval or '1m'}" in args


def self_signed(tmp_path):
    cert, key = tmp_path / "am.crt", tmp_path / "am.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=mon1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return str(cert), str(key)


def test_web_config_is_empty_by_default(role_vars):
    assert yaml.safe_load(render_file(role_vars, WEB)) is None


def test_web_config_carries_tls_and_the_password_hash_only(role_vars, tmp_path):
    cert, key = self_signed(tmp_path)
    text = render_file(role_vars, WEB, alertmanager_tls_cert_file=cert, alertmanager_tls_key_file=key, **AUTH)
    assert yaml.safe_load(text) == {"tls_server_config": {"cert_file": cert, "key_file": key},
                                    "basic_auth_users": {"prometheus": HASH}}
    assert "x" * 24 not in text


@pytest.mark.skipif(PROMTOOL is None, reason="promtool comes from `make unit` (tests/tools/prometheus_tools.sh)")
@pytest.mark.parametrize("variant", ["default", "basic-auth", "tls-and-basic-auth"])
def test_promtool_accepts_the_web_config(role_vars, tmp_path, variant):
    overrides = {} if variant == "default" else dict(AUTH)
    if variant == "tls-and-basic-auth":
        overrides["alertmanager_tls_cert_file"], overrides["alertmanager_tls_key_file"] = self_signed(tmp_path)
    path = tmp_path / "web.yml"
    path.write_text(render_file(role_vars, WEB, **overrides))
    result = subprocess.run([PROMTOOL, "check", "web-config", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def tier_parameters(playbook, role, **inventory):
    """The role parameters a tier playbook passes to `role`, templated as in the play.

    Every role default of the play is visible there (Ansible's public role defaults), under the
    inventory's values.
    """
    (play,) = yaml.safe_load((REPO / playbook).read_text())
    names = [entry["role"] for entry in play["roles"]]
    variables = {}
    for name in names:
        variables.update(RoleVars(name).variables)
    variables.update(inventory)
    (entry,) = [e for e in play["roles"] if e["role"] == role]
    templar = Templar(loader=DataLoader(), variables=variables)
    return {key: templar.template(trust_as_template(value) if isinstance(value, str) else
                                  [trust_as_template(v) for v in value] if isinstance(value, list) else value)
            for key, value in entry.get("vars", {}).items()}


def test_the_alert_log_follows_common_log_dir(role_vars):
    params = tier_parameters("playbooks/site_monitoring.yml", "alertmanager",
                             common_log_dir="/srv/log/stockdb", common_user="ops", common_lib_dir="/opt/stockdb")
    unit = render_file(role_vars, UNIT, **params)
    assert "--log /srv/log/stockdb/alerts.log" in unit
    assert "ReadWritePaths=/srv/log/stockdb\n" in unit
    assert "User=ops\n" in unit and "/usr/bin/python3 /opt/stockdb/alertlog.py " in unit
    logrotate = render_file(role_vars, LOGROTATE, **params)
    assert logrotate.startswith("# managed\n/srv/log/stockdb/alerts.log {") and "create 0640 ops adm" in logrotate


@pytest.mark.parametrize(("inventory", "targets", "scheme"), [
    ({}, ["127.0.0.1:9093"], "http"),
    ({"alertmanager_listen_address": "0.0.0.0:9193"}, ["127.0.0.1:9193"], "http"),
    ({"alertmanager_listen_address": ":9093"}, ["127.0.0.1:9093"], "http"),
    ({"alertmanager_listen_address": "mon1.example.internal:9093", "alertmanager_tls_cert_file": "/etc/ssl/am.crt",
      "alertmanager_tls_key_file": "/etc/ssl/am.key"}, ["mon1.example.internal:9093"], "https"),
], ids=["loopback", "all-ipv4", "all", "tls"])
def test_prometheus_is_given_the_alertmanager_of_its_host(inventory, targets, scheme):
    params = tier_parameters("playbooks/site_monitoring.yml", "prometheus", **inventory)
    assert params["prometheus_alertmanager_targets"] == targets
    assert params["prometheus_alertmanager_scheme"] == scheme


def render_prometheus(role_vars, **overrides):
    v = role_vars("prometheus", ansible_managed="managed", groups={"all": ["db1"], "mariadb": ["db1"]},
                  hostvars={"db1": {"ansible_host": "192.0.2.10"}}, **overrides)
    return v.render(PROMETHEUS)


def test_prometheus_sends_to_alertmanager_with_its_credentials(role_vars, tmp_path):
    params = tier_parameters("playbooks/site_monitoring.yml", "prometheus",
                             alertmanager_basic_auth_username="prometheus", alertmanager_basic_auth_password="y" * 24)
    (alertmanager,) = yaml.safe_load(render_prometheus(role_vars, **params))["alerting"]["alertmanagers"]
    assert alertmanager == {"scheme": "http", "basic_auth": {"username": "prometheus", "password": "y" * 24},
                            "static_configs": [{"targets": ["127.0.0.1:9093"]}]}


@pytest.mark.skipif(PROMTOOL is None, reason="promtool comes from `make unit` (tests/tools/prometheus_tools.sh)")
def test_promtool_accepts_prometheus_with_tls_and_basic_auth_to_alertmanager(role_vars, tmp_path):
    cert, _ = self_signed(tmp_path)
    path = tmp_path / "prometheus.yml"
    path.write_text(render_prometheus(
        role_vars, prometheus_alertmanager_scheme="https", prometheus_alertmanager_tls_config={"ca_file": cert},
        prometheus_alertmanager_basic_auth_username="prometheus", prometheus_alertmanager_basic_auth_password="y" * 24))
    result = subprocess.run([PROMTOOL, "check", "config", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
