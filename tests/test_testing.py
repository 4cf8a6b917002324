from ml_dash.testing import read_run, temporary_experiment


def test_temporary_experiment_and_read_run():
    """The shipped helpers give users a throwaway experiment and everything it wrote."""
    with temporary_experiment(prefix="t") as exp:
        with exp.run():
            exp.params.set(lr=0.1)
            exp.metrics.log(step=0, loss=float("nan"))
            exp.info("hi", k=1)
        run = read_run(exp.local_path)
    assert run["meta"]["status"] == "completed" and run["params"] == {"lr": 0.1}
    assert run["metrics"][0]["metrics"]["loss"] != run["metrics"][0]["metrics"]["loss"]  # NaN came back as a float
    assert run["logs"][0]["message"] == "hi"
