"""``ml_dash.format.layout``: the on-disk names and the helpers every reader of a run directory shares."""
import os

from ml_dash.format.layout import TMP_MARK, atomic_write, saved_files


def test_saved_files_lists_finished_files_sorted_with_slash_paths_and_leaves_temp_files_out(tmp_path):
    """Nested files come back sorted by their '/' path with their stat; an atomic save in progress does not."""
    atomic_write(str(tmp_path / "b.txt"), b"bb")
    atomic_write(str(tmp_path / "a" / "z.json"), b"{}")
    (tmp_path / "a" / (TMP_MARK + "half")).write_bytes(b"partial")
    found = saved_files(str(tmp_path))
    assert [path for path, _st in found] == ["a/z.json", "b.txt"]
    assert [st.st_size for _path, st in found] == [2, 2]


def test_saved_files_of_a_missing_directory_is_empty(tmp_path):
    """A run that never saved a file has no files/ directory: nothing, not an error."""
    assert saved_files(os.path.join(tmp_path, "files")) == []
