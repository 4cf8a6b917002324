"""`import ml_dash` never imports a framework; each integration imports only its own."""


def test_import_ml_dash_imports_no_framework(run_python):
    code = ("import sys, ml_dash, ml_dash.integrations\n"
            "print(sorted(m for m in ('lightning', 'transformers', 'accelerate', 'torch') if m in sys.modules))")
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
