"""The call forms W&B users write (a dict first) and the step range the server can store."""
import pytest

STEP_MIN, STEP_END = -(2**63), 2**63  # what SQL integers hold (ml_dash.format.limits says the same)


def test_dict_first_with_step_keyword(make_exp):
    exp = make_exp()
    exp.metrics.log({"loss": 0.5}, step=3)
    exp.metrics.log({"loss": 0.25, "train": {"acc": 0.9, "deep": {"x": 1}}}, step=4, lr=0.1)
    exp.metrics.log({"loss": 0.125})
    rows = exp.metrics.read()
    assert [(r["step"], r["metrics"]) for r in rows] == [
        (3, {"loss": 0.5}),
        (4, {"loss": 0.25, "train.acc": 0.9, "train.deep.x": 1, "lr": 0.1}),
        (None, {"loss": 0.125}),
    ]


def test_dict_first_in_a_namespace_and_collect(make_exp):
    exp = make_exp()
    train = exp.metrics("train")
    train.log({"loss": 1.0}, step=0)
    train.collect({"loss": 2.0}, step=1)
    train.collect({"loss": 4.0}, step=1)
    train.flush()
    assert [(r["step"], r["metrics"]) for r in exp.metrics.read()] == [(0, {"train.loss": 1.0}),
                                                                       (1, {"train.loss": 3.0})]


def test_positional_int_is_still_the_step(make_exp):
    exp = make_exp()
    exp.metrics.log(7, loss=1.0)
    assert exp.metrics.read()[0]["step"] == 7


def test_bad_positional_forms_say_what_to_pass(make_exp):
    exp = make_exp()
    with pytest.raises(TypeError, match=r"dict of metrics.*or pass keywords"):
        exp.metrics.log([("loss", 1.0)])
    with pytest.raises(ValueError, match="loss given both"):
        exp.metrics.log({"loss": 1.0}, loss=2.0)
    with pytest.raises(TypeError, match="step given twice"):
        exp.metrics.log(3, step=4, loss=1.0)


@pytest.mark.parametrize("step", [STEP_END, STEP_MIN - 1, 2**100])
def test_step_outside_int64_is_refused_at_the_call(make_exp, step):
    exp = make_exp()
    with pytest.raises(ValueError, match=r"step=.*out of range"):
        exp.metrics.log(step=step, loss=1.0)
    with pytest.raises(ValueError, match=r"step=.*out of range"):
        exp.metrics.collect(step=step, loss=1.0)
    with pytest.raises(ValueError, match=r"step=.*out of range"):
        exp.metrics.flush(step=step, loss=1.0)
    exp.metrics.log(step=STEP_END - 1, loss=1.0)
    exp.metrics.log(step=STEP_MIN, loss=2.0)
    assert [r["step"] for r in exp.metrics.read()] == [STEP_END - 1, STEP_MIN]


def test_numpy_step_outside_int64_is_refused():
    np = pytest.importorskip("numpy")
    from ml_dash.client.values import check_step

    assert check_step(np.uint64(2**63), "x") == 2**63  # converted; the range check then refuses it at the call


def test_server_takes_its_step_range_from_format_limits():
    import inspect

    from ml_dash.format import limits

    assert (limits.STEP_MIN, limits.STEP_END) == (STEP_MIN, STEP_END)

    from ml_dash.server import ingest, ingest_columns

    for module in (ingest, ingest_columns):
        source = inspect.getsource(module)
        assert "STEP_MIN" in source and "STEP_END" in source, module.__name__
