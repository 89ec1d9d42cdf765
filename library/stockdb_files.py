#!/usr/bin/python
"""Ansible module stockdb_files: many files and directories to their wanted state in one run on the host."""

DOCUMENTATION = r"""
---
module: stockdb_files
short_description: Files (with their content), directories and absent paths, all in one run on the host
description:
  - Brings every entry of O(files) to its wanted state - a regular file with this content, owner,
    group and mode; a directory with this owner, group and mode; or no path at all - and reports
    which changed. A file is replaced whole (a temporary file beside it, its owner and mode set
    before the rename), so a reader never sees half of it and a secret is never readable by others.
  - Why not ansible.builtin.template in a loop - template and copy run two modules on the host for
    every file even when nothing changes (a stat, then the file module); the roles' reruns spent most
    of their time there. Render the content on the controller with
    C(lookup('ansible.builtin.template', ...)) and give all the files of a role, or of one handler,
    to one task.
  - Every entry is checked and compared before the first is changed, so a bad entry (a relative path,
    a path given twice, an unknown owner, a file where a directory is wanted, a file whose directory
    does not exist, new content its O(files[].validate) command refuses) fails with its path named and
    changes nothing.
  - Supports check mode (reports what would change; a missing directory or account that an earlier task
    would make is allowed, and nothing is validated, as with ansible.builtin.template) and diff mode (the
    content of each changed file; use C(no_log) on a task whose files hold secrets).
options:
  files:
    description: The entries, applied in the order given (a directory before the files in it).
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Absolute, normalised path.
        type: str
        required: true
      state:
        description: C(file) (with O(files[].content)), C(directory), or C(absent) (a file, link or directory tree removed).
        type: str
        choices: [file, directory, absent]
        default: file
      content:
        description: The whole content of a C(file) (text, written as UTF-8).
        type: str
      owner:
        description: User name that owns the path; left as it is (or the module's user for a new path) when not given.
        type: str
      group:
        description: Group name of the path; left as it is (or the module's group for a new path) when not given.
        type: str
      mode:
        description: Octal mode as a quoted string (C("0640")); required for a C(file) and a C(directory).
        type: str
      validate:
        description:
          - For a C(file) - a command that checks the new content before anything is written, with C(%s) as
            the word for a temporary file holding it (C(promtool check rules %s)). It runs only when the
            content changes; when it fails, no entry of the task is changed and the error gives its output.
        type: str
author: stockdb
"""

EXAMPLES = r"""
- name: Ensure the job units are in place
  stockdb_files:
    files:
      - path: /etc/systemd/system/stockdb-healthcheck.service
        content: "{{ lookup('ansible.builtin.template', 'etc/systemd/system/stockdb-job.service.j2') }}"
        owner: root
        group: root
        mode: "0644"
      - path: /var/lib/stockdb/ops
        state: directory
        mode: "0750"
      - path: /etc/stockdb/backup.json
        state: absent
  notify: Reload systemd
"""

RETURN = r"""
changed_paths:
  description: Each path that changed (or would, in check mode), with what - created, removed, content, mode, owner, group.
  type: dict
  returned: always
  sample: {"/etc/systemd/system/stockdb-backup.timer": ["content"], "/var/lib/stockdb/ops": ["mode"]}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.stockdb import files


def main():
    module = AnsibleModule(
        argument_spec=dict(
            files=dict(type="list", elements="dict", required=True, options=dict(
                path=dict(type="str", required=True),
                state=dict(type="str", choices=list(files.STATES), default="file"),
                content=dict(type="str"),
                owner=dict(type="str"),
                group=dict(type="str"),
                mode=dict(type="str"),
                validate=dict(type="str"),
            )),
        ),
        supports_check_mode=True,
    )
    try:
        result = files.sync(module.params["files"], check_mode=module.check_mode, want_diff=module._diff)
    except files.FilesError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg=f"{exc.filename or 'a file'}: {exc.strerror or exc}")
    out = {"changed": bool(result["changed"]), "changed_paths": result["changed"]}
    if result["diff"]:
        out["diff"] = result["diff"]
    module.exit_json(**out)


if __name__ == "__main__":
    main()
