#!/usr/bin/env python3
"""Alertmanager webhook receiver that appends every notification to the alert log.

One line per alert and notification, for example:
  2026-11-24T03:00:15Z FIRING critical MariaDBDown instance=db1:9104 job=mysqld :: MariaDB on db1:9104 is down

The file is opened for each notification, so logrotate can move it at any time.
Listens on loopback only; Alertmanager on the same host posts to it.
"""

import argparse
import json
import sys
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Lock

MAX_BODY = 1024 * 1024
_write_lock = Lock()


def format_lines(payload, now=None):
    """Turn one Alertmanager webhook payload (version 4) into alert-log lines."""
    now = now or datetime.now(timezone.utc)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = []
    for alert in payload.get("alerts", []):
        labels = dict(alert.get("labels", {}))
        status = str(alert.get("status", payload.get("status", "unknown"))).upper()
        name = labels.pop("alertname", "unnamed")
        severity = labels.pop("severity", "none")
        label_text = " ".join(f"{k}={v}" for k, v in sorted(labels.items()))
        summary = alert.get("annotations", {}).get("summary", "")
        since = alert.get("startsAt", "")
        line = f"{stamp} {status} {severity} {name} {label_text} since={since}"
        if summary:
            line += f" :: {summary}"
        lines.append(line.replace("\n", " "))
    return lines


class Handler(BaseHTTPRequestHandler):
    log_path = None

    def do_POST(self):  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length", "0"))
        if length <= 0 or length > MAX_BODY:
            self.send_error(400, "body missing or larger than 1 MiB")
            return
        try:
            payload = json.loads(self.rfile.read(length))
        except ValueError as exc:
            self.send_error(400, f"not JSON: {exc}")
            return
        lines = format_lines(payload)
        with _write_lock, open(self.log_path, "a", encoding="utf-8") as log:
            for line in lines:
                log.write(line + "\n")
        self.send_response(200)
        self.end_headers()

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"stockdb alert log receiver\n")

    def log_message(self, fmt, *args):
        sys.stderr.write("%s\n" % (fmt % args))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9095)
    parser.add_argument("--log", required=True, help="alert log file to append to")
    args = parser.parse_args()
    Handler.log_path = args.log
    ThreadingHTTPServer((args.listen, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
