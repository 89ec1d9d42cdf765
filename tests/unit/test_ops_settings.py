"""One source of settings: the backup role renders every setting of the Python defaults, with equal values."""

import json

import pytest
from stockdb.ops import OpsError
from stockdb.ops import settings as ops_settings

TEMPLATE = "roles/backup/templates/etc/stockdb/ops.json.j2"


def rendered(role_vars, **overrides):
    text = role_vars("backup", ansible_managed="", inventory_hostname="db1.example.internal", **overrides).render(TEMPLATE)
    return json.loads(text) if isinstance(text, str) else text


def test_the_role_renders_every_setting_and_its_defaults_equal_the_python_defaults(role_vars):
    config = rendered(role_vars)
    assert set(config) == set(ops_settings.DEFAULTS)
    assert set(config["health"]) == set(ops_settings.DEFAULTS["health"])
    # the host's own name is the one setting that is not a default: the inventory's name of the host
    assert config.pop("host_name") == "db1.example.internal"
    assert config == {k: v for k, v in ops_settings.DEFAULTS.items() if k != "host_name"}


def test_the_rendered_file_loads_and_validates(role_vars, tmp_path):
    path = tmp_path / "ops.json"
    path.write_text(json.dumps(rendered(role_vars)))
    assert ops_settings.load(str(path))["throttle"] == 20


def test_moving_the_log_directory_moves_the_job_logs_and_the_alert_log(role_vars):
    config = rendered(role_vars, backup_log_dir="/srv/log/stockdb", backup_config_dir="/srv/etc/stockdb")
    assert config["log_dir"] == "/srv/log/stockdb" and config["alert_log"] == "/srv/log/stockdb/alerts.log"
    assert config["defaults_file"] == "/srv/etc/stockdb/backup.cnf"
    assert config["admin_defaults_file"] == "/srv/etc/stockdb/admin.cnf"


def test_unknown_settings_are_named_at_both_levels(tmp_path):
    path = tmp_path / "ops.json"
    path.write_text(json.dumps({"backup_dri": "/x", "health": {"disk_max": 1}}))
    with pytest.raises(OpsError, match=r"unknown settings \['backup_dri', 'health.disk_max'\]"):
        ops_settings.load(str(path))


def test_health_thresholds_merge_over_the_defaults(tmp_path):
    path = tmp_path / "ops.json"
    path.write_text(json.dumps({"health": {"long_transaction_seconds": 5}}))
    health = ops_settings.load(str(path))["health"]
    assert health["long_transaction_seconds"] == 5 and health["disk_max_ratio"] == 0.85


@pytest.mark.parametrize("key, value, message", [
    ("throttle", -1, "throttle=-1 must be >= 0"), ("lock_timeout", 0, "lock_timeout=0 must be >= 1"),
    ("log_copy_interval_ms", 0, "log_copy_interval_ms=0 must be 10..1000"),
    ("log_copy_interval_ms", 5000, "log_copy_interval_ms=5000 must be 10..1000"),
    ("parallel", "two", "parallel='two' must be an integer"), ("log_dir", "logs", "log_dir='logs' must be an absolute"),
    ("source", "", "source='' must be primary or one host's name"),
    ("source", "db1 db2", "source='db1 db2' must be primary or one host's name"),
    ("parallel", True, "parallel=True must be an integer"), ("throttle", 2.5, "throttle=2.5 must be an integer"),
    ("datadir", 5, "datadir=5 must be an absolute path"),
])
def test_bad_values_are_named(key, value, message):
    with pytest.raises(OpsError, match=message):
        ops_settings.load(None, {key: value})


def test_a_null_or_wrongly_typed_setting_in_the_file_is_named_with_the_others(tmp_path):
    path = tmp_path / "ops.json"
    path.write_text(json.dumps({"datadir": None, "backup_dir": ["/x"], "retention_days": False}))
    with pytest.raises(OpsError) as refused:
        ops_settings.load(str(path))
    assert str(refused.value) == ("backup_dir=['/x'] must be an absolute path other than /; datadir=None must be an "
                                  "absolute path other than /; retention_days=False must be an integer")
