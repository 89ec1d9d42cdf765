"""The alert-log receiver: line format, and a real HTTP round trip on loopback."""

import importlib.util
import json
import threading
import urllib.error
import urllib.request
from datetime import datetime, timezone
from http.server import ThreadingHTTPServer

import pytest
from conftest import REPO

spec = importlib.util.spec_from_file_location("alertlog", REPO / "roles/alertmanager/files/alertlog.py")
alertlog = importlib.util.module_from_spec(spec)
spec.loader.exec_module(alertlog)

PAYLOAD = {
    "version": "4",
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "MariaDBDown", "severity": "critical", "instance": "db1:9104", "job": "mysqld"},
            "annotations": {"summary": "MariaDB on db1:9104 is down"},
            "startsAt": "2026-11-24T03:00:00Z",
        },
        {
            "status": "resolved",
            "labels": {"alertname": "HostMemoryLow", "instance": "db1:9100"},
            "annotations": {"summary": "line one\nline two: 한국어"},
            "startsAt": "2026-11-24T02:00:00Z",
        },
    ],
}
NOW = datetime(2026, 11, 24, 3, 0, 15, tzinfo=timezone.utc)


def test_one_line_per_alert_with_status_severity_labels_and_summary():
    lines = alertlog.format_lines(PAYLOAD, now=NOW)
    assert lines == [
        "2026-11-24T03:00:15Z FIRING critical MariaDBDown instance=db1:9104 job=mysqld "
        "since=2026-11-24T03:00:00Z :: MariaDB on db1:9104 is down",
        "2026-11-24T03:00:15Z RESOLVED none HostMemoryLow instance=db1:9100 "
        "since=2026-11-24T02:00:00Z :: line one line two: 한국어",
    ]


def test_payload_without_alerts_writes_nothing():
    assert alertlog.format_lines({"status": "firing"}, now=NOW) == []


@pytest.fixture
def receiver(tmp_path):
    log = tmp_path / "alerts.log"
    alertlog.Handler.log_path = str(log)
    server = ThreadingHTTPServer(("127.0.0.1", 0), alertlog.Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", log
    server.shutdown()
    server.server_close()


def _post(url, body):
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    return urllib.request.urlopen(request, timeout=5)


def test_posted_notifications_are_appended(receiver):
    url, log = receiver
    assert _post(url, json.dumps(PAYLOAD).encode()).status == 200
    assert _post(url, json.dumps(PAYLOAD).encode()).status == 200
    lines = log.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4
    assert " FIRING critical MariaDBDown " in lines[0] and " RESOLVED none HostMemoryLow " in lines[3]


def test_bad_body_is_refused_and_nothing_written(receiver):
    url, log = receiver
    with pytest.raises(urllib.error.HTTPError) as refused:
        _post(url, b"{not json")
    assert refused.value.code == 400
    assert not log.exists()
