import pytest

from ml_dash.format.names import check_segments, safe_join


@pytest.mark.parametrize("value", ["a", "a/b", "a//b/", "x.y", "..a", "a..b"])
def test_accepts_relative_names(value):
    """Plain relative names (dots inside names included) are accepted and normalised."""
    assert ".." not in check_segments("arg", value).split("/")


@pytest.mark.parametrize("value", ["..", "a/..", "/a", "a\\b", "a\x00", "", "/", "./a"])
def test_rejects_escapes(value):
    """Anything that could leave the root is a ValueError naming the argument."""
    with pytest.raises(ValueError, match="arg"):
        check_segments("arg", value)


def test_rejects_non_str():
    """A non-str name is a TypeError naming the argument."""
    with pytest.raises(TypeError, match="arg"):
        check_segments("arg", 3)


def test_safe_join_stays_under_root(tmp_path):
    """safe_join returns a path inside the root."""
    assert safe_join(str(tmp_path), "a/b.txt", "filename") == str(tmp_path / "a" / "b.txt")
