"""``python -m ml_dash.server`` — the same as ``ml-dash server``."""
import sys

from ml_dash.server.cli import main

sys.exit(main())
