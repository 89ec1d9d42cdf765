"""Many files and directories brought to their wanted state in one call: the logic of stockdb_files.

Ansible's template and copy cost two module runs on the host per file even when nothing changes
(a stat, then the file module for the attributes); a role with thirty files pays that thirty
times on every rerun. Here the controller renders the contents, and one run on the host compares
and fixes them all. Each entry is checked before anything is written, so a bad entry changes
nothing.
"""

import grp
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import tempfile

STATES = ("file", "directory", "absent")
# A diff shows a previous content only when it is text and at most this long.
DIFF_MAX_BYTES = 64 * 1024


class FilesError(ValueError):
    """An entry that cannot be applied; the message names its path and what is wrong."""


def _mode(path, value):
    if value is None:
        return None
    text = str(value)
    if not text.isdigit() or any(c > "7" for c in text) or len(text) not in (3, 4):
        raise FilesError(f"{path}: mode {value!r} is not an octal mode such as '0644' (quote it in YAML)")
    return int(text, 8)


# An owner or group that does not exist yet, in check mode (the package or task that makes it has not
# run): the path is reported as changing, nothing more can be compared.
NOT_YET = -2


def _account_id(path, what, name, check_mode):
    """The number of a user (what='owner') or group (what='group') name; None when no name is given."""
    if name is None:
        return None
    try:
        return pwd.getpwnam(name).pw_uid if what == "owner" else grp.getgrnam(name).gr_gid
    except KeyError:
        if check_mode:
            return NOT_YET
        raise FilesError(f"{path}: {what} {name!r} is no {'user' if what == 'owner' else 'group'} on this host") from None


def check_entries(entries, check_mode=False):
    """The entries as dicts ready to apply (mode as a number, uid/gid), or FilesError naming the first bad one.

    In check mode an owner or group unknown on the host is allowed (the run that creates it has not run).
    """
    checked, seen = [], set()
    for entry in entries:
        path = entry.get("path") or ""
        state = entry.get("state") or "file"
        if not os.path.isabs(path) or os.path.normpath(path) != path:
            raise FilesError(f"path {path!r} must be an absolute, normalised path")
        if path in seen:
            raise FilesError(f"{path}: given twice")
        seen.add(path)
        if state not in STATES:
            raise FilesError(f"{path}: state {state!r} is not one of {', '.join(STATES)}")
        content = entry.get("content")
        if state == "file" and content is None:
            raise FilesError(f"{path}: a file needs its content")
        if state != "file" and content is not None:
            raise FilesError(f"{path}: content is only for state=file, not {state}")
        if state != "absent" and entry.get("mode") is None:
            raise FilesError(f"{path}: a {state} needs its mode")
        validate = entry.get("validate")
        if validate is not None and (state != "file" or "%s" not in validate):
            raise FilesError(f"{path}: validate is a command for a file, with %s where the file to check goes;"
                             f" got {validate!r}")
        checked.append({
            "path": path,
            "state": state,
            "content": None if content is None else str(content).encode("utf-8"),
            "mode": _mode(path, entry.get("mode")),
            "uid": _account_id(path, "owner", entry.get("owner"), check_mode),
            "gid": _account_id(path, "group", entry.get("group"), check_mode),
            "validate": validate,
        })
    return checked


def _attribute_changes(st, entry):
    changes = []
    if entry["mode"] is not None and stat.S_IMODE(st.st_mode) != entry["mode"]:
        changes.append("mode")
    if entry["uid"] is not None and st.st_uid != entry["uid"]:
        changes.append("owner")
    if entry["gid"] is not None and st.st_gid != entry["gid"]:
        changes.append("group")
    return changes


def plan(entry):
    """What applying the entry would change: [] when it is as wanted, else e.g. ['content', 'mode']."""
    path = entry["path"]
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return [] if entry["state"] == "absent" else ["created"]
    if entry["state"] == "absent":
        return ["removed"]
    if entry["state"] == "directory":
        if not stat.S_ISDIR(st.st_mode):
            raise FilesError(f"{path}: wanted a directory, found {_kind(st)}")
        return _attribute_changes(st, entry)
    if not stat.S_ISREG(st.st_mode):
        raise FilesError(f"{path}: wanted a regular file, found {_kind(st)}")
    changes = []
    if st.st_size != len(entry["content"]) or _read(path) != entry["content"]:
        changes.append("content")
    return changes + _attribute_changes(st, entry)


def _kind(st):
    if stat.S_ISDIR(st.st_mode):
        return "a directory"
    if stat.S_ISLNK(st.st_mode):
        return "a symbolic link"
    return "a special file" if not stat.S_ISREG(st.st_mode) else "a regular file"


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _chown(path, entry, fd=None):
    if entry["uid"] is None and entry["gid"] is None:
        return
    uid = -1 if entry["uid"] is None else entry["uid"]
    gid = -1 if entry["gid"] is None else entry["gid"]
    if fd is not None:
        os.fchown(fd, uid, gid)
    else:
        os.chown(path, uid, gid)


def _write(entry):
    """Replace the file whole: a temporary file beside it, with its owner and mode set before a rename."""
    path = entry["path"]
    try:
        previous = os.lstat(path)
    except FileNotFoundError:
        previous = None
    keep = {"uid": entry["uid"], "gid": entry["gid"]}
    if previous is not None:
        keep = {"uid": previous.st_uid if entry["uid"] is None else entry["uid"],
                "gid": previous.st_gid if entry["gid"] is None else entry["gid"]}
    fd, tmp = tempfile.mkstemp(prefix=".stockdb-files-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as f:
            _chown(tmp, keep, f.fileno())
            os.fchmod(f.fileno(), entry["mode"])
            f.write(entry["content"])
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def apply(entry, changes):
    """Make the changes plan() found."""
    path = entry["path"]
    if not changes:
        return
    if entry["state"] == "absent":
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    elif entry["state"] == "directory":
        if "created" in changes:
            os.makedirs(path, mode=0o755)
        os.chmod(path, entry["mode"])
        _chown(path, entry)
    elif "created" in changes or "content" in changes:
        _write(entry)
    else:
        os.chmod(path, entry["mode"])
        _chown(path, entry)


def diff(entry, changes):
    """An Ansible diff of the entry's content (None when its content did not change)."""
    if not ({"content", "created", "removed"} & set(changes)) or entry["state"] == "directory":
        return None
    before = ""
    if "created" not in changes and os.path.isfile(entry["path"]):
        data = _read(entry["path"])
        before = _text(data)
    after = "" if entry["state"] == "absent" else _text(entry["content"])
    return {"before_header": entry["path"], "after_header": entry["path"], "before": before, "after": after}


def _text(data):
    if len(data) > DIFF_MAX_BYTES:
        return f"({len(data)} bytes, not shown)\n"
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return f"({len(data)} bytes of binary data, not shown)\n"


def run_validation(entry):
    """Run the entry's validate command on its new content in a temporary file; FilesError when it fails."""
    parent = os.path.dirname(entry["path"])
    fd, tmp = tempfile.mkstemp(prefix=".stockdb-files-check-", dir=parent if os.path.isdir(parent) else None)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(entry["content"])
        argv = [word.replace("%s", tmp) for word in shlex.split(entry["validate"])]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FilesError(f"{entry['path']}: could not run {entry['validate']!r}: {exc}") from None
        if done.returncode != 0:
            said = (done.stderr.strip() or done.stdout.strip())[-2000:]
            raise FilesError(f"{entry['path']}: the new content fails {entry['validate']!r} "
                             f"(exit {done.returncode}), nothing was changed: {said}")
    finally:
        os.unlink(tmp)


def sync(entries, check_mode=False, want_diff=False):
    """Bring every entry to its wanted state (in order: a directory before the files in it).

    Returns {"changed": {path: [what changed]}, "diff": [...]}. Every entry is checked, planned and
    (new content with a validate command) validated before the first is applied, so a bad entry, an
    unexpected file type or content its validator refuses changes nothing. Check mode allows what an
    earlier task of the run would make (a directory, an account) and validates nothing.
    """
    checked = check_entries(entries, check_mode)
    planned, new_dirs = [], set()
    for entry in checked:
        changes = plan(entry)
        if "created" in changes:
            parent = os.path.dirname(entry["path"])
            if entry["state"] == "directory":
                new_dirs.add(entry["path"])
            elif parent not in new_dirs and not os.path.isdir(parent) and not check_mode:
                raise FilesError(f"{entry['path']}: its directory {parent} does not exist (give it as a directory first)")
        planned.append((entry, changes))
    # As Ansible's template: validated only when written (in check mode the validator may not be installed yet).
    for entry, changes in planned:
        if entry["validate"] and ({"created", "content"} & set(changes)) and not check_mode:
            run_validation(entry)
    changed, diffs = {}, []
    for entry, changes in planned:
        if not changes:
            continue
        changed[entry["path"]] = changes
        if want_diff:
            d = diff(entry, changes)
            if d:
                diffs.append(d)
        if not check_mode:
            apply(entry, changes)
    return {"changed": changed, "diff": diffs}
