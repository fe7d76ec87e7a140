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


def test_a_video_that_stops_early_is_status_3(tmp_path, capsys, monkeypatch):
    from engram.qa import video

    monkeypatch.setattr(video, "build_command", lambda *a, **k: "10 frames, STOPPED EARLY at 0:20: cut")
    assert cli.main(["qa", "build", str(tmp_path / "v.mp4"), "--out", str(tmp_path / "m")]) == cli.PARTIAL == 3
    monkeypatch.setattr(video, "build_command", lambda *a, **k: "10 frames, complete")
    assert cli.main(["qa", "build", str(tmp_path / "v.mp4"), "--out", str(tmp_path / "m")]) == 0
