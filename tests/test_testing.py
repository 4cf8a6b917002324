import os
import tempfile
import textwrap

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


def test_temporary_experiment_leaves_nothing_behind(run_python, tmp_path):
    """A run left open in a temporary experiment does not recreate the deleted directory at exit."""
    proc = run_python(textwrap.dedent("""
        from ml_dash.testing import temporary_experiment
        with temporary_experiment(prefix="t") as exp:
            exp.run()
            exp.metrics.log(step=0, loss=1.0)
            root = exp.local_path
        print(root)
    """))
    assert proc.returncode == 0, proc.stderr
    root = proc.stdout.strip()
    assert root.startswith(tempfile.gettempdir())
    assert not os.path.exists(root)
