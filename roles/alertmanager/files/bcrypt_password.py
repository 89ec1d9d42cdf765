"""Print the bcrypt hash of a password for Alertmanager's web config, keeping a stored hash that matches.

Reads {"password": ..., "stored": ...} as JSON on stdin (never the command line) and prints the
stored hash when it still matches the password, else a new one: a rerun changes nothing.
Runs on the Alertmanager host with the distribution's python3-bcrypt.
"""

import json
import sys

import bcrypt

given = json.load(sys.stdin)
password = given["password"].encode()
stored = given.get("stored", "").encode()
try:
    keep = bool(stored) and bcrypt.checkpw(password, stored)
except ValueError:  # not a bcrypt hash
    keep = False
print((stored if keep else bcrypt.hashpw(password, bcrypt.gensalt(rounds=10))).decode())
