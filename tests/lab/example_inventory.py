#!/usr/bin/env python3
"""Make a working inventory from inventory/production.example, as a user following docs/production.md would.

Copies the example to DEST, puts the given hosts into its groups (reached over ssh with KEY, their host keys
pinned in KNOWN_HOSTS), writes each host's settings for this machine to host_vars/, makes
group_vars/all/vault.yml from its .example with a generated value for every vault_* and encrypts it with
the vault password file (generated when missing). The generated values are appended to SECRETS, so a
caller can check that no output ever shows one.

    example_inventory.py --dest DIR --key KEY --known-hosts FILE --vault-pass FILE --secrets FILE \
        --host mariadb=db1:172.18.0.2 --host monitoring=mon1:172.18.0.5 [--host-var mariadb_memory_mb=1536]

Used by tests/production/run.sh (one host in both groups) and tests/lab/cluster.sh (the multi-host lab).
"""

import argparse
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

VAULT_KEY = re.compile(r"^(vault_[a-z0-9_]+):", re.M)
VAULT_USE = re.compile(r"\bvault_[a-z0-9_]+")


def fail(message):
    sys.exit(f"example_inventory: {message}")


def parse_hosts(specs):
    """['group=name:address', ...] -> {group: {name: address}}."""
    groups = {}
    for spec in specs:
        match = re.fullmatch(r"([a-z_]+)=([A-Za-z0-9.-]+):([0-9a-fA-F.:]+)", spec)
        if not match:
            fail(f"--host {spec!r} is not GROUP=NAME:ADDRESS")
        group, name, address = match.groups()
        groups.setdefault(group, {})[name] = address
    return groups


def fill_hosts(path, groups, key, known_hosts):
    inventory = yaml.safe_load(path.read_text())
    children = inventory["all"]["children"]
    for group, hosts in groups.items():  # groups not named (chaos_targets) stay as the example has them
        children[group]["hosts"] = {name: {"ansible_host": address} for name, address in hosts.items()}
    inventory["all"].setdefault("vars", {}).update(
        ansible_ssh_private_key_file=str(key), ansible_ssh_common_args=f"-o UserKnownHostsFile={known_hosts}")
    path.write_text("---\n" + yaml.safe_dump(inventory, sort_keys=False))


def write_host_vars(dest, names, settings, own=None):
    """settings for every host, and own[name] (settings of one host) on top."""
    own = own or {}
    for name in names:
        mine = {**settings, **own.get(name, {})}
        if not mine:
            continue
        (dest / "host_vars").mkdir(exist_ok=True)
        (dest / "host_vars" / f"{name}.yml").write_text(
            "---\n# Added by tests/lab/example_inventory.py: what this machine's lab hosts need.\n"
            + yaml.safe_dump(mine, sort_keys=False))


def parse_settings(items, option, per_host=False):
    """['NAME=VALUE', ...] -> {NAME: value}; per_host: ['HOST:NAME=VALUE', ...] -> {HOST: {NAME: value}}."""
    settings = {}
    for item in items:
        key, sep, value = item.partition("=")
        host, _, name = key.rpartition(":") if per_host else (None, "", key)
        if not sep or not name or (per_host and not host):
            fail(f"{option} {item!r} is not {'HOST:' if per_host else ''}NAME=VALUE")
        target = settings.setdefault(host, {}) if per_host else settings
        target[name] = yaml.safe_load(value)
    return settings


def make_vault(dest, vault_pass, secrets_file, ansible_vault):
    examples = list(dest.rglob("vault.yml.example"))
    if len(examples) != 1:
        fail(f"expected one vault.yml.example in {dest}, found {len(examples)}")
    vault = examples[0].with_suffix("")
    text = examples[0].read_text()
    keys = VAULT_KEY.findall(text)
    if not keys:
        fail(f"no vault_* variable in {examples[0]}")
    values = {k: secrets.token_hex(32) for k in keys}  # 64 hex digits: a password, or a 256-bit key
    for k, value in values.items():
        text = re.sub(rf"^{k}:.*$", f'{k}: "{value}"', text, flags=re.M)
    if any("CHANGE-ME" in line for line in text.splitlines() if not line.lstrip().startswith("#")):
        fail(f"a CHANGE-ME value is left in {vault}")
    used = set()
    for path in dest.rglob("*"):
        if path.is_file() and not path.name.startswith("vault.yml"):
            lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
            used |= set(VAULT_USE.findall("\n".join(lines)))
    missing = sorted(used - set(keys))
    if missing:
        fail(f"{', '.join(missing)} used by the inventory but not in {examples[0].relative_to(dest)}")
    old = os.umask(0o077)
    try:
        vault.write_text(text)
        with open(secrets_file, "a") as f:
            f.writelines(f"{v}\n" for v in values.values())
        if not vault_pass.exists():
            vault_pass.write_text(secrets.token_urlsafe(32) + "\n")
    finally:
        os.umask(old)
    # Encrypted with this password file only: one named by ANSIBLE_VAULT_PASSWORD_FILE as well (Molecule's cluster
    # scenario sets it for its playbooks) would make two vault ids and no choice between them.
    env = {k: v for k, v in os.environ.items() if k != "ANSIBLE_VAULT_PASSWORD_FILE"}
    subprocess.run([ansible_vault, "encrypt", "--vault-password-file", str(vault_pass), str(vault)], check=True,
                   stdout=subprocess.DEVNULL, env=env)
    if not vault.read_text().startswith("$ANSIBLE_VAULT"):
        fail(f"{vault} is not vault-encrypted")
    return keys


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--example", type=Path, default=Path("inventory/production.example"))
    parser.add_argument("--dest", type=Path, required=True)
    parser.add_argument("--host", action="append", default=[], required=True, help="GROUP=NAME:ADDRESS")
    parser.add_argument("--host-var", action="append", default=[], help="NAME=VALUE (YAML) for every host")
    parser.add_argument("--one-host-var", action="append", default=[], help="HOST:NAME=VALUE (YAML) for one host")
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--known-hosts", type=Path, required=True)
    parser.add_argument("--vault-pass", type=Path, required=True)
    parser.add_argument("--secrets", type=Path, required=True)
    parser.add_argument("--ansible-vault", default=str(Path(sys.executable).with_name("ansible-vault")))
    args = parser.parse_args()
    if not (args.example / "hosts.yml").is_file():
        fail(f"no inventory {args.example}")
    if args.dest.exists():
        fail(f"{args.dest} exists already")
    groups = parse_hosts(args.host)
    settings = parse_settings(args.host_var, "--host-var")
    own = parse_settings(args.one_host_var, "--one-host-var", per_host=True)
    known = set(yaml.safe_load((args.example / "hosts.yml").read_text())["all"]["children"])
    if set(groups) - known:
        fail(f"{args.example}/hosts.yml has no group(s) {sorted(set(groups) - known)} (it has {sorted(known)})")
    shutil.copytree(args.example, args.dest)
    try:
        fill_hosts(args.dest / "hosts.yml", groups, args.key, args.known_hosts)
        names = sorted({n for hosts in groups.values() for n in hosts})
        if set(own) - set(names):
            fail(f"--one-host-var names hosts {sorted(set(own) - set(names))} that no --host gives")
        write_host_vars(args.dest, names, settings, own)
        keys = make_vault(args.dest, args.vault_pass, args.secrets, args.ansible_vault)
    except BaseException:
        shutil.rmtree(args.dest)  # no half-made inventory (with a clear vault file) is left behind
        raise
    print("\n".join(keys))


if __name__ == "__main__":
    main()
