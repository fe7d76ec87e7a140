"""The `engram` command's exit statuses: 0 done, 2 an error (one line), 3 partial results."""

from __future__ import annotations

import pytest

from engram import cli


def test_errors_are_one_line_and_status_2(tmp_path, capsys, monkeypatch):
    def boom(args):
        raise KeyError("a key the input lacked")

    monkeypatch.setattr(cli, "_info", boom)
    assert cli.main(["info", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == "engram info: error: KeyError: 'a key the input lacked'\n"
    with pytest.raises(KeyError):
        cli.main(["--debug", "info", str(tmp_path)])


def test_a_video_that_stops_early_is_status_3(tmp_path, monkeypatch):
    import types

    import hydra.utils

    from engram.qa import video

    report = types.SimpleNamespace(complete=False)
    monkeypatch.setattr(hydra.utils, "get_method", lambda target: lambda **kw: types.SimpleNamespace(report=report))
    monkeypatch.setattr(video, "build_summary", lambda qa, out: "10 frames, STOPPED EARLY at 0:20: cut")
    argv = ["qa", "build", str(tmp_path / "v.mp4"), "--out", str(tmp_path / "m")]
    assert cli.main(argv) == cli.PARTIAL == 3
    report.complete = True
    assert cli.main(argv) == 0
