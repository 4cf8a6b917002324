"""Set-up step: fetch plotly.js's basic bundle for the dashboard (see ml_dash/server/_chart_library.py).

    python scripts/fetch_chart_library.py      # the same as: ml-dash server fetch-chart-library
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ml_dash.server.chart_library import fetch_chart_library  # noqa: E402

if __name__ == "__main__":
    sys.exit(fetch_chart_library())
