"""``python -m ml_dash.server`` — the same as ``ml-dash server``."""
import sys

from ._cli import main

sys.exit(main())
