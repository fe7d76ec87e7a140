"""engram._util: the one clock-time format and the one folder-size helper."""

from __future__ import annotations

import pytest

from engram._util import dir_size_mb, fmt_time


@pytest.mark.parametrize(
    ("t_s", "text"),
    [
        (0.0, "00:00"),
        (59.4, "00:59"),
        (59.6, "01:00"),
        (754.0, "12:34"),
        (3600.0, "1:00:00"),
        (3723.2, "1:02:03"),
        (-5.0, "00:00"),
    ],
)
def test_fmt_time(t_s, text):
    assert fmt_time(t_s) == text


def test_fmt_time_round_trips_through_the_question_parser():
    from engram.qa.video import parse_time_s

    for t in (0, 61, 754, 3723):
        assert parse_time_s(f"at {fmt_time(t)}") == t


def test_dir_size_mb_counts_every_file_once(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 1000)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"y" * 250_000)
    (tmp_path / "empty").mkdir()
    assert dir_size_mb(tmp_path) == pytest.approx(0.251)
    assert dir_size_mb(tmp_path / "a") == pytest.approx(0.001)
    assert dir_size_mb(tmp_path / "empty") == 0.0
