"""``exp.tags`` and ``exp.notes``: kept in the meta file, validated like the server validates them."""
from __future__ import annotations

import pytest

from ml_dash.format.layout import read_meta


def test_tags_from_the_constructor_add_remove_and_notes_land_in_the_meta_file(make_exp):
    """tags=, add, remove and notes are written to the meta file at once, in order, without duplicates."""
    exp = make_exp("tagged", tags=["baseline", "resnet", "baseline"])
    assert list(exp.tags) == ["baseline", "resnet"] and read_meta(exp.local_path)["tags"] == ["baseline", "resnet"]
    exp.tags.add("keep", "resnet")
    exp.tags.remove("baseline", "never-had")
    exp.notes = "lr too high"
    meta = read_meta(exp.local_path)
    assert meta["tags"] == ["resnet", "keep"] and meta["notes"] == "lr too high" and "keep" in exp.tags
    revision = meta["annotations_revision"]
    exp.tags.add("keep")  # no change: no new revision for the uploader to send
    assert read_meta(exp.local_path)["annotations_revision"] == revision
    with exp.run():
        exp.metrics.log(step=0, loss=1.0)
    assert read_meta(exp.local_path)["tags"] == ["resnet", "keep"]  # the run's meta writes keep them


def test_a_reopened_experiment_keeps_its_tags_and_notes(make_exp):
    """A second Experiment object on the same directory reads the tags and notes back."""
    exp = make_exp("again", tags=["a"])
    exp.notes = "first"
    again = make_exp("again")
    assert list(again.tags) == ["a"] and again.notes == "first"
    again.notes = None
    assert read_meta(exp.local_path)["notes"] is None


@pytest.mark.parametrize("bad, error", [("baseline", TypeError), ([""], ValueError), (["x" * 257], ValueError),
                                        ([1], ValueError), ([f"t{i}" for i in range(101)], ValueError)])
def test_bad_tags_are_refused_naming_the_argument(make_exp, bad, error):
    """A string instead of a list, an empty, overlong or non-string tag, or too many: a clear error."""
    with pytest.raises(error, match="tags"):
        make_exp("bad", tags=bad)
    exp = make_exp("bad2")
    with pytest.raises((TypeError, ValueError), match="tags"):
        exp.tags.add(*bad) if isinstance(bad, list) else exp.tags.set(bad)
    with pytest.raises(TypeError, match="notes"):
        exp.notes = 3


def test_an_over_long_tag_list_is_refused_after_one_pass_of_at_most_the_limit():
    """Before: every tag was compared with every other (``tag not in out``) and the limit checked at the end."""
    from ml_dash.format.annotations import check_tags
    from ml_dash.format.limits import MAX_TAGS

    class Counting(list):
        seen = 0

        def __iter__(self):
            for item in super().__iter__():
                Counting.seen += 1
                yield item

    with pytest.raises(ValueError, match=f"at most {MAX_TAGS} tags per experiment, got 100000"):
        check_tags(Counting(f"t{i}" for i in range(100_000)))
    assert Counting.seen == MAX_TAGS + 1
    assert check_tags([f"t{i}" for i in range(100_000)], "remove", limit=None)[-1] == "t99999"
    with pytest.raises(TypeError, match="tags must be a list"):
        check_tags({"a": 1})
