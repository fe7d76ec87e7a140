"""engram._util: the one clock-time format, the one folder-size helper and the backends' registry."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import engram
from engram._util import dir_size_bytes, dir_size_mb, fmt_time


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
    assert dir_size_bytes(tmp_path) == 251_000
    assert dir_size_bytes(tmp_path / "missing") == 0


def test_registry_builds_by_name_lists_lazy_modules_and_names_the_known_ones_on_a_miss() -> None:
    from engram._util import Registry

    reg: Registry[object] = Registry("widget", {"lazy_json": "json", "ghost": "engram.no_such_module"})

    @reg.register("plain")
    class Plain:
        def __init__(self, size: int = 1) -> None:
            self.size = size

    built = reg.build("plain", size=3)
    assert isinstance(built, Plain) and built.size == 3
    # a lazy name is listed only when its module exists; nothing registers "lazy_json", so building it
    # imports json and still misses, naming the kind and the known names
    assert reg.available() == ["lazy_json", "plain"]
    with pytest.raises(ValueError, match=r"unknown widget 'ghost'; available: lazy_json, plain"):
        reg.build("ghost")
    with pytest.raises(ValueError, match="unknown widget 'lazy_json'"):
        reg.build("lazy_json")


def test_one_copy_of_each_helper():
    """No module but _util splits seconds into hours and minutes or sums file sizes itself."""
    package = Path(engram.__file__).resolve().parent
    copies = []
    for path in package.rglob("*.py"):
        if path.name == "_util.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            text = ast.unparse(node) if isinstance(node, (ast.Call, ast.GeneratorExp)) else ""
            if (text.startswith("divmod(") and "3600" in text) or (
                isinstance(node, ast.GeneratorExp) and "st_size" in text
            ):
                copies.append(f"{path.relative_to(package)}:{node.lineno}: {text}")
    assert copies == []
