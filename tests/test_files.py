import os

import numpy as np
import pytest


def test_formats_round_trip(make_exp):
    """Each documented format saves and loads back equal data."""
    exp = make_exp()
    exp.files.save({"results": [1, 2, 3]}, "results.json")
    exp.files.save(np.arange(6).reshape(2, 3), "embeddings.npy")
    exp.files.save({"a": np.ones(2)}, "arrays.npz")
    exp.files.save({"obj": {1, 2}}, "object.pkl")
    exp.files.save(b"binary data", "data.bin")
    exp.files.save("text content", "notes.txt")
    exp.files.save({"fallback": (1, 2)}, "thing.custom")
    assert exp.files.load("results.json") == {"results": [1, 2, 3]}
    assert (exp.files.load("embeddings.npy") == np.arange(6).reshape(2, 3)).all()
    assert (exp.files.load("arrays.npz")["a"] == np.ones(2)).all()
    assert exp.files.load("object.pkl") == {"obj": {1, 2}}
    assert exp.files.load("data.bin") == b"binary data"
    assert exp.files.load("notes.txt") == "text content"
    assert exp.files.load("thing.custom") == {"fallback": (1, 2)}


def test_save_pkl_adds_extension(make_exp):
    """``save_pkl`` adds .pkl."""
    exp = make_exp()
    exp.files.save_pkl([1, 2], "checkpoint")
    assert exp.files.exists("checkpoint.pkl") and exp.files.load("checkpoint.pkl") == [1, 2]


def test_torch_round_trip(make_exp):
    """.pt files go through torch; ``load_torch`` adds the extension."""
    torch = pytest.importorskip("torch")
    exp = make_exp()
    state = {"w": torch.arange(4.0), "epoch": 3}
    exp.files("checkpoints").save(state, "best_model.pt")
    loaded = exp.files("checkpoints").load_torch("best_model")
    assert loaded["epoch"] == 3 and torch.equal(loaded["w"], state["w"])


def test_namespaces_and_list(make_exp):
    """``exp.files("checkpoints")`` writes under files/checkpoints/ and lists its files."""
    exp = make_exp()
    ck = exp.files("checkpoints")
    ck.save(b"1", "epoch_10.pt.bin")
    exp.files("configs").save({"a": 1}, "training.json")
    assert os.path.isfile(os.path.join(exp.local_path, "files", "checkpoints", "epoch_10.pt.bin"))
    assert ck.list() == ["epoch_10.pt.bin"]
    assert exp.files.list() == ["checkpoints/epoch_10.pt.bin", "configs/training.json"]
    assert exp.files("nothing").list() == []


def test_exists_and_missing(make_exp):
    """``exists`` is False for a missing file and ``load`` raises FileNotFoundError naming it."""
    exp = make_exp()
    assert not exp.files.exists("model.pt")
    with pytest.raises(FileNotFoundError, match="model.pt"):
        exp.files.load("model.pt")


@pytest.mark.parametrize("name", ["../escape.json", "/etc/passwd", "a/../../b.txt", "bad\x00.txt", "a\\..\\b.txt", ""])
def test_filenames_cannot_escape(make_exp, name):
    """Filenames that would leave files/ raise ValueError naming ``filename``."""
    exp = make_exp()
    with pytest.raises(ValueError, match="filename"):
        exp.files.save(b"x", name)


def test_namespace_cannot_escape(make_exp):
    """A file namespace with ``..`` is rejected."""
    with pytest.raises(ValueError, match="namespace"):
        make_exp().files("../../etc")


def test_atomic_save_leaves_old_file_on_failure(make_exp):
    """If encoding fails mid-save, the previous file stays intact and no temp file remains."""
    exp = make_exp()
    exp.files.save({"v": 1}, "state.json")

    class Unjsonable:
        pass

    with pytest.raises(TypeError):
        exp.files.save({"v": Unjsonable()}, "state.json")
    assert exp.files.load("state.json") == {"v": 1}
    assert exp.files.list() == ["state.json"]


@pytest.mark.parametrize("method", ["save_pkl", "load_torch"])
def test_non_str_filename_names_the_argument(make_exp, method):
    """save_pkl/load_torch with a non-str filename raise TypeError naming filename, like save/load."""
    files = make_exp().files
    args = ({"a": 1}, 123) if method == "save_pkl" else (123,)
    with pytest.raises(TypeError, match="filename"):
        getattr(files, method)(*args)


@pytest.mark.parametrize("data, filename", [(123, "n.txt"), ({"a": 1}, "cfg.txt"), ([1, 2], "rows.csv"), (1.5, "x.md")])
def test_text_extensions_refuse_what_would_not_load_back_as_text(make_exp, data, filename):
    exp = make_exp()
    with pytest.raises(TypeError, match=r"data= must be str or bytes"):
        exp.files.save(data, filename)
    assert not exp.files.exists(filename)
    exp.files.save("a\nb", filename)  # str and bytes still round-trip as text
    assert exp.files.load(filename) == "a\nb"
    exp.files.save(b"raw", filename)
    assert exp.files.load(filename) == "raw"
