import pytest

from flexip.atomic import atomic_path, is_temporary, replace_directory, write_text


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = write_text(tmp_path / "result.json", "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            assert is_temporary(temporary.name) and temporary.suffix == ".json"
            temporary.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_replace_directory_swaps_whole_folders(tmp_path):
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "a").write_text("new")
    (tmp_path / "final").mkdir()
    (tmp_path / "final" / "b").write_text("old")
    replace_directory(tmp_path / "new", tmp_path / "final")
    assert sorted(p.name for p in (tmp_path / "final").iterdir()) == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final"]
