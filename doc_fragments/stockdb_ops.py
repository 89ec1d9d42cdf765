"""Documentation of the options stockdb_backup and stockdb_restore share (module_utils/stockdb/ops/)."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  config:
    description:
      - JSON settings written by the backup role (backup directory, option files, compression,
        encryption key, retention, metrics and log directories). Options given to the module win.
    type: path
    default: /etc/stockdb/ops.json
  backup_dir:
    description: Backup area (C(backups/) and the binlog archive C(binlog/)); default from O(config).
    type: path
  encrypt_key_file:
    description: Key file for openssl AES-256 encryption of each backup file; default from O(config).
    type: path
"""
