"""The one progress bar (kernel_recovery.model.progress): when it shows, and what it says without tqdm."""

import io
import sys

import pytest

import kernel_recovery as kr
from kernel_recovery.model.progress import NoBar, progress_bar, show_progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_bar_when_not_asked_or_not_a_terminal():
    assert not show_progress(None)  # pytest captures stderr: not a terminal
    assert isinstance(progress_bar(None, total=3), NoBar)
    assert isinstance(progress_bar(False, total=3), NoBar)
    assert list(progress_bar(False, [3, 1, 2])) == [3, 1, 2]


def test_terminal_default_and_worth_showing(monkeypatch):
    pytest.importorskip("tqdm")
    monkeypatch.setattr(sys, "stderr", _Terminal())  # (in the test: pytest's capture resets it around each phase)
    assert show_progress(None)
    bar = progress_bar(None, total=3, desc="test")
    assert not isinstance(bar, NoBar)
    bar.close()
    assert isinstance(progress_bar(None, total=3, worth_showing=False), NoBar)
    bar = progress_bar(True, total=3, worth_showing=False)  # asked for: shown all the same
    assert not isinstance(bar, NoBar)
    bar.close()


def test_without_tqdm_names_the_extra(monkeypatch):
    monkeypatch.setattr(sys, "stderr", _Terminal())
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    with pytest.raises(ImportError, match=r"kernel_recovery\[progress\]"):
        progress_bar(True, total=3)
    assert isinstance(progress_bar(None, total=3), NoBar)  # the default just draws nothing


def test_no_bar_writes_lines():
    out = io.StringIO()
    with progress_bar(False, total=2) as bar:
        bar.set_postfix_str("a")
        bar.update()
        bar.write("row", file=out)
    assert out.getvalue() == "row\n"


def test_track_kernel_progress_true_draws(rng, monkeypatch):
    pytest.importorskip("tqdm")
    x = rng.standard_normal(600)
    y = kr.conv1d(x, [1.0, 0.5], padding="causal")
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    kr.track_kernel(x, y, 2, window=200, step=100, padding="causal", progress=True, detect_changes=False)
    assert "track_kernel" in stream.getvalue()
