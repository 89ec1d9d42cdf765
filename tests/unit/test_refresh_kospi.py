"""tools/refresh_kospi.py: the optional pykrx refresher fails clearly offline and writes nothing."""

import importlib.util
import sys
import types

import pytest
from conftest import REPO

spec = importlib.util.spec_from_file_location("refresh_kospi", REPO / "tools/refresh_kospi.py")
refresh = importlib.util.module_from_spec(spec)
spec.loader.exec_module(refresh)


def test_without_pykrx_it_says_so_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pykrx", None)  # as on a machine without it
    out = tmp_path / "listing.csv"
    assert refresh.main(["--date", "20250102", "--out", str(out)]) == 1
    assert "pykrx is not installed" in capsys.readouterr().err
    assert not out.exists()


def test_unreachable_krx_is_named_and_the_old_file_kept(tmp_path, capsys, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise ConnectionError("no route to KRX")

    fake = types.SimpleNamespace(get_market_cap=refuse)
    monkeypatch.setitem(sys.modules, "pykrx", types.SimpleNamespace(stock=fake))
    out = tmp_path / "listing.csv"
    out.write_text("previous\n")
    assert refresh.main(["--date", "20250102", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "KRX did not answer for 20250102" in err and "no route to KRX" in err
    assert out.read_text() == "previous\n"


@pytest.mark.parametrize("date", ["2025-01-02", "202501", "tomorrow"])
def test_bad_date_is_refused(date, tmp_path):
    assert refresh.main(["--date", date, "--out", str(tmp_path / "x.csv")]) == 2
