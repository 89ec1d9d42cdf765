"""module_utils/stockdb/files.py (the logic of stockdb_files) on real files in a temporary directory:
what changes and what does not, check mode, diffs, and bad entries that change nothing."""

import os
import stat

import pytest
from stockdb import files

AS_ROOT = os.geteuid() == 0


def entry(path, **kw):
    kw.setdefault("mode", "0644")
    return {"path": str(path), **kw}


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_a_new_file_is_written_with_its_mode_and_a_rerun_changes_nothing(tmp_path):
    target = tmp_path / "a.cnf"
    first = files.sync([entry(target, content="[client]\nuser=app\n", mode="0600")])
    assert first["changed"] == {str(target): ["created"]}
    assert target.read_text() == "[client]\nuser=app\n" and mode_of(target) == 0o600
    assert files.sync([entry(target, content="[client]\nuser=app\n", mode="0600")])["changed"] == {}
    assert [p.name for p in tmp_path.iterdir()] == ["a.cnf"], "no temporary file is left beside it"


def test_new_content_replaces_the_file_whole_and_keeps_the_wanted_mode(tmp_path):
    target = tmp_path / "unit.service"
    files.sync([entry(target, content="old\n")])
    inode = os.stat(target).st_ino
    result = files.sync([entry(target, content="new\n")])
    assert result["changed"] == {str(target): ["content"]}
    assert target.read_text() == "new\n" and mode_of(target) == 0o644
    assert os.stat(target).st_ino != inode, "replaced by a rename, never rewritten in place"


def test_only_the_mode_is_fixed_when_the_content_is_right(tmp_path):
    target = tmp_path / "key"
    target.write_text("secret\n")
    os.chmod(target, 0o644)
    inode = os.stat(target).st_ino
    assert files.sync([entry(target, content="secret\n", mode="0640")])["changed"] == {str(target): ["mode"]}
    assert mode_of(target) == 0o640 and os.stat(target).st_ino == inode


def test_directories_are_made_with_their_mode_including_setgid(tmp_path):
    logs = tmp_path / "var" / "log" / "mysql"
    result = files.sync([entry(logs, state="directory", mode="2750")])
    assert result["changed"] == {str(logs): ["created"]}
    assert logs.is_dir() and mode_of(logs) == 0o2750
    os.chmod(logs, 0o700)
    assert files.sync([entry(logs, state="directory", mode="2750")])["changed"] == {str(logs): ["mode"]}
    assert mode_of(logs) == 0o2750


def test_a_file_can_go_into_a_directory_made_earlier_in_the_same_call(tmp_path):
    directory = tmp_path / "etc" / "stockdb"
    target = directory / "ops.json"
    files.sync([entry(directory, state="directory", mode="0750"), entry(target, content="{}\n")])
    assert target.read_text() == "{}\n"


def test_absent_removes_files_and_trees_and_is_then_unchanged(tmp_path):
    old_file = tmp_path / "backup.json"
    old_file.write_text("{}")
    old_tree = tmp_path / "stockdb.old"
    (old_tree / "sub").mkdir(parents=True)
    (old_tree / "sub" / "x.py").write_text("x")
    wanted = [{"path": str(old_file), "state": "absent"}, {"path": str(old_tree), "state": "absent"}]
    assert files.sync(wanted)["changed"] == {str(old_file): ["removed"], str(old_tree): ["removed"]}
    assert not old_file.exists() and not old_tree.exists()
    assert files.sync(wanted)["changed"] == {}


def test_check_mode_reports_every_change_and_makes_none(tmp_path):
    present = tmp_path / "present"
    present.write_text("before\n")
    os.chmod(present, 0o600)
    wanted = [entry(tmp_path / "new", content="x\n"), entry(present, content="after\n"),
              entry(tmp_path / "dir", state="directory", mode="0755")]
    result = files.sync(wanted, check_mode=True)
    assert result["changed"] == {str(tmp_path / "new"): ["created"], str(present): ["content", "mode"],
                                 str(tmp_path / "dir"): ["created"]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["present"]
    assert present.read_text() == "before\n" and mode_of(present) == 0o600


def test_diff_shows_the_content_before_and_after(tmp_path):
    target = tmp_path / "args"
    target.write_text("ARGS=old\n")
    result = files.sync([entry(target, content="ARGS=new\n")], check_mode=True, want_diff=True)
    assert result["diff"] == [{"before_header": str(target), "after_header": str(target),
                               "before": "ARGS=old\n", "after": "ARGS=new\n"}]
    binary = tmp_path / "blob"
    binary.write_bytes(b"\xff\xfe\x00")
    shown = files.sync([entry(binary, content="text\n")], check_mode=True, want_diff=True)["diff"][0]
    assert shown["before"] == "(3 bytes of binary data, not shown)\n"
    assert files.sync([entry(target, content="ARGS=old\n")], want_diff=True)["diff"] == []


@pytest.mark.parametrize("bad, named", [
    ({"path": "relative/x", "content": "a", "mode": "0644"}, "'relative/x' must be an absolute"),
    ({"path": "/etc/../etc/x", "content": "a", "mode": "0644"}, "normalised"),
    ({"path": "/x", "mode": "0644"}, "/x: a file needs its content"),
    ({"path": "/x", "state": "directory", "content": "a", "mode": "0755"}, "content is only for state=file"),
    ({"path": "/x", "state": "link", "mode": "0644"}, "state 'link' is not one of file, directory, absent"),
    ({"path": "/x", "content": "a"}, "/x: a file needs its mode"),
    ({"path": "/x", "content": "a", "mode": "644o"}, "mode '644o' is not an octal mode"),
    ({"path": "/x", "content": "a", "mode": "0648"}, "mode '0648'"),
    ({"path": "/x", "content": "a", "mode": "u+rw"}, "mode 'u+rw'"),
    ({"path": "/x", "content": "a", "mode": "0644", "owner": "no-such-user-here"}, "owner 'no-such-user-here' is no user"),
    ({"path": "/x", "content": "a", "mode": "0644", "group": "no-such-group-here"}, "group 'no-such-group-here' is no group"),
])
def test_a_bad_entry_is_named_and_nothing_is_changed(tmp_path, bad, named):
    first = tmp_path / "first"
    with pytest.raises(files.FilesError, match=named.replace("(", r"\(").replace("+", r"\+")):
        files.sync([entry(first, content="x\n"), bad])
    assert not first.exists(), "an entry before the bad one was applied"


def test_the_same_path_twice_is_refused(tmp_path):
    with pytest.raises(files.FilesError, match="given twice"):
        files.sync([entry(tmp_path / "a", content="1"), entry(tmp_path / "a", content="2")])


def test_a_file_where_a_directory_is_wanted_and_the_reverse_change_nothing(tmp_path):
    (tmp_path / "is-a-file").write_text("keep")
    (tmp_path / "is-a-dir").mkdir()
    first = tmp_path / "first"
    with pytest.raises(files.FilesError, match="is-a-file: wanted a directory, found a regular file"):
        files.sync([entry(first, content="x"), entry(tmp_path / "is-a-file", state="directory", mode="0755")])
    with pytest.raises(files.FilesError, match="is-a-dir: wanted a regular file, found a directory"):
        files.sync([entry(first, content="x"), entry(tmp_path / "is-a-dir", content="x")])
    os.symlink(tmp_path / "is-a-file", tmp_path / "link")
    with pytest.raises(files.FilesError, match="link: wanted a regular file, found a symbolic link"):
        files.sync([entry(tmp_path / "link", content="x")])
    assert not first.exists() and (tmp_path / "is-a-file").read_text() == "keep"


def test_a_file_whose_directory_does_not_exist_is_refused_before_anything_is_written(tmp_path):
    first = tmp_path / "first"
    with pytest.raises(files.FilesError, match=r"its directory .*/missing does not exist"):
        files.sync([entry(first, content="x"), entry(tmp_path / "missing" / "f", content="x")])
    assert not first.exists()


@pytest.mark.skipif(not AS_ROOT, reason="changing a file's owner needs root")
def test_owner_and_group_are_set_on_new_files_and_fixed_on_old_ones(tmp_path):
    target = tmp_path / "exporter.cnf"
    files.sync([entry(target, content="x\n", mode="0600", owner="nobody", group="nogroup")])
    st = os.stat(target)
    assert (st.st_uid, st.st_gid) == (65534, 65534)
    os.chown(target, 0, 0)
    result = files.sync([entry(target, content="x\n", mode="0600", owner="nobody", group="nogroup")])
    assert result["changed"] == {str(target): ["owner", "group"]}
    # not given: left as they are, also when the content changes
    files.sync([entry(target, content="y\n", mode="0600")])
    assert (os.stat(target).st_uid, os.stat(target).st_gid) == (65534, 65534)


def test_new_content_is_validated_first_and_a_refusal_changes_nothing(tmp_path):
    good, bad = tmp_path / "good.cnf", tmp_path / "bad.cnf"
    good.write_text("old\n")
    # %s may be part of a word, as in mariadbd --defaults-file=%s
    check = """sh -c 'grep -q ^ok "${1#--file=}"' sh --file=%s"""
    result = files.sync([entry(good, content="ok\n", validate=check)])
    assert result["changed"] == {str(good): ["content"]} and good.read_text() == "ok\n"
    with pytest.raises(files.FilesError, match=r"bad.cnf: the new content fails .* \(exit 1\), nothing was changed"):
        files.sync([entry(good, content="ok again\n"), entry(bad, content="not\n", validate="grep -q ^ok %s")])
    assert good.read_text() == "ok\n" and not bad.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.cnf"], "the file checked is removed"
    # unchanged content is not validated again (the command would fail here)
    assert files.sync([entry(good, content="ok\n", validate="false %s")])["changed"] == {}


def test_validate_is_for_files_and_needs_the_placeholder(tmp_path):
    with pytest.raises(files.FilesError, match="validate is a command for a file, with %s"):
        files.sync([entry(tmp_path / "a", content="x", validate="true")])
    with pytest.raises(files.FilesError, match="validate is a command for a file"):
        files.sync([entry(tmp_path / "d", state="directory", mode="0755", validate="test -d %s")])
    with pytest.raises(files.FilesError, match="could not run 'no-such-tool-here %s'"):
        files.sync([entry(tmp_path / "a", content="x", validate="no-such-tool-here %s")])


def test_check_mode_allows_an_owner_or_group_the_run_has_not_made_yet(tmp_path):
    """In check mode on a new host the package or task that makes an account has not run."""
    new_dir = entry(tmp_path / "new", state="directory", mode="0750", owner="stockdb-not-yet", group="mysql-not-yet")
    old = tmp_path / "old"
    old.write_text("x")
    os.chmod(old, 0o644)
    result = files.sync([new_dir, entry(old, content="x", group="mysql-not-yet")], check_mode=True)
    assert result["changed"] == {str(tmp_path / "new"): ["created"], str(old): ["group"]}
    with pytest.raises(files.FilesError, match="owner 'stockdb-not-yet' is no user"):
        files.sync([new_dir])


def test_check_mode_allows_a_directory_an_earlier_task_would_make_and_validates_nothing(tmp_path):
    """A fresh host's check: /etc/stockdb is made by the common role, the validator comes with a package."""
    target = tmp_path / "etc" / "stockdb" / "ops.json"
    result = files.sync([entry(target, content="{}\n", validate="no-such-validator %s")], check_mode=True)
    assert result["changed"] == {str(target): ["created"]}
    assert not (tmp_path / "etc").exists()
