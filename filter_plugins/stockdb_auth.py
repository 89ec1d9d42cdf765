"""Filter ``stockdb_auth_string``: the string MariaDB stores for a password under an authentication plugin
(and ``stockdb_account_spec``: a role's account with that string in place of its password).

The role and ``playbooks/rotate_secrets.yml`` set the project's accounts from such strings
(``IDENTIFIED WITH <plugin> AS '<string>'``) rather than from clear text: the clear text never reaches
the server's statement, and the comparison with what the server holds makes a re-run change nothing.

- ``mysql_native_password``: ``*`` and the upper-case hex SHA-1 of the SHA-1 of the password.
- ``ed25519`` (MariaDB's ``auth_ed25519``): the password's SHA-512, its first 32 bytes clamped as an
  Ed25519 secret scalar, times the curve's base point; the point's 32-byte encoding in base64 without
  the padding (43 characters). The arithmetic below is the textbook one (RFC 8032, twisted Edwards
  curve in extended coordinates); it runs once per account and run, so speed does not matter.
"""

import base64
import hashlib

from ansible.errors import AnsibleFilterError

_P = 2**255 - 19
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _x_from_y(y, sign):
    xx = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    x = pow(xx, (_P + 3) // 8, _P)
    if (x * x - xx) % _P:
        x = x * _SQRT_M1 % _P
    return _P - x if (x & 1) != sign else x


def _add(a, b):
    """Sum of two points (X, Y, Z, T) of -x^2 + y^2 = 1 + d x^2 y^2; also doubles (a == b)."""
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    k = (y1 - x1) * (y2 - x2) % _P
    m = (y1 + x1) * (y2 + x2) % _P
    c = 2 * _D * t1 * t2 % _P
    d = 2 * z1 * z2 % _P
    e, f, g, h = m - k, d - c, d + c, m + k
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


_BASE_Y = 4 * pow(5, _P - 2, _P) % _P
_BASE_X = _x_from_y(_BASE_Y, 0)
_BASE = (_BASE_X, _BASE_Y, 1, _BASE_X * _BASE_Y % _P)


def _times_base(scalar):
    result, addend = (0, 1, 1, 0), _BASE
    while scalar:
        if scalar & 1:
            result = _add(result, addend)
        addend = _add(addend, addend)
        scalar >>= 1
    x, y, z, _ = result
    z_inv = pow(z, _P - 2, _P)
    x, y = x * z_inv % _P, y * z_inv % _P
    return (y | (x & 1) << 255).to_bytes(32, "little")


def ed25519_auth_string(password):
    secret = bytearray(hashlib.sha512(password.encode()).digest()[:32])
    secret[0] &= 248
    secret[31] &= 63
    secret[31] |= 64
    return base64.b64encode(_times_base(int.from_bytes(secret, "little"))).decode().rstrip("=")


def native_auth_string(password):
    # SHA-1 is what this plugin is (and why ACC-08 wants ed25519); usedforsecurity=False says so.
    inner = hashlib.sha1(password.encode(), usedforsecurity=False).digest()
    return "*" + hashlib.sha1(inner, usedforsecurity=False).hexdigest().upper()


_PLUGINS = {"ed25519": ed25519_auth_string, "mysql_native_password": native_auth_string}


def stockdb_auth_string(password, plugin):
    if plugin not in _PLUGINS:
        raise AnsibleFilterError(
            f"stockdb_auth_string: unknown authentication plugin {plugin!r}; known: {', '.join(sorted(_PLUGINS))}"
        )
    if not isinstance(password, str) or not password:
        raise AnsibleFilterError(
            "stockdb_auth_string: the password is empty (no default passwords: set it in the inventory or vault)")
    return _PLUGINS[plugin](password)


def stockdb_account_spec(account):
    """A role's account (user, host, password, plugin, priv, and optionally limits and tls) as the module
    stockdb_accounts takes it: the password replaced by the plugin's string for it."""
    try:
        spec = {name: account[name] for name in ("user", "host", "plugin", "priv")}
    except KeyError as exc:
        name = account.get("name", account.get("user"))
        raise AnsibleFilterError(f"stockdb_account_spec: the account {name!r} has no {exc}") from None
    spec["plugin_hash_string"] = stockdb_auth_string(account.get("password"), account["plugin"])
    spec["resource_limits"] = account.get("limits") or None
    spec["tls_requires"] = account.get("tls")
    return spec


class FilterModule:
    def filters(self):
        return {"stockdb_auth_string": stockdb_auth_string, "stockdb_account_spec": stockdb_account_spec}
