"""plotly.js's "basic" bundle (scatter, bar, pie; 1.2 MB) from the npm registry, into the dashboard's vendor dir.

The dashboard otherwise serves the full plotly.min.js (4.8 MB) that the `plotly` Python package ships: it draws our
charts the same, but Chromium spends ~0.8 s executing it on a first visit, against ~0.2 s for the basic bundle.
Third-party code is never committed: this runs at set-up/build time (scripts/setup.sh) or by hand
(``ml-dash server fetch-chart-library``), pinned by version and checked by the registry's sha512 and our sha256 of
the file. Without network it says so and the server goes on with the full bundle.
"""
from __future__ import annotations

import base64
import hashlib
import io
import os
import sys
import tarfile
import urllib.request

PACKAGE, VERSION = "plotly.js-basic-dist-min", "4.1.1"
TARBALL = f"https://registry.npmjs.org/{PACKAGE}/-/{PACKAGE}-{VERSION}.tgz"
INTEGRITY = "sha512-1oNF8PeQx2hv/y7tqEVWKD3JGwn/MGEMQ8mL9HUwsaqG9FGy/OU5FHUHvzqbqxN4mnwZGI9abTiE775C4kkjMQ=="
BUNDLE_SHA256 = "99784e3abfb07b142a15e521a439e6d9addceadb3f79553fd24c72774f0649ba"
VENDOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static", "vendor")  # git-ignored
BUNDLE = os.path.join(VENDOR, "plotly-basic.min.js")


def fetch_chart_library() -> int:
    """Install the pinned basic bundle unless it is already there; 0 also when offline (the full bundle serves)."""
    if os.path.isfile(BUNDLE):
        with open(BUNDLE, "rb") as f:
            if hashlib.sha256(f.read()).hexdigest() == BUNDLE_SHA256:
                return 0
    try:
        with urllib.request.urlopen(TARBALL, timeout=60) as answer:
            tgz = answer.read()
    except OSError as exc:
        print(f"fetch_chart_library: could not download {TARBALL} ({exc}); the dashboard will serve the full "
              f"plotly.min.js from the plotly package instead", file=sys.stderr)
        return 0
    digest = "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode()
    if digest != INTEGRITY:
        print(f"fetch_chart_library: {TARBALL} does not match its pinned integrity; not installed", file=sys.stderr)
        return 1
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as archive:
        bundle = archive.extractfile("package/plotly-basic.min.js").read()
        license_text = archive.extractfile("package/LICENSE").read()
    if hashlib.sha256(bundle).hexdigest() != BUNDLE_SHA256:
        print("fetch_chart_library: plotly-basic.min.js does not match its pinned sha256; not installed", file=sys.stderr)
        return 1
    os.makedirs(VENDOR, exist_ok=True)
    with open(os.path.join(VENDOR, "LICENSE.plotly.js"), "wb") as f:
        f.write(license_text)
    tmp = BUNDLE + ".tmp"
    with open(tmp, "wb") as f:
        f.write(bundle)
    os.replace(tmp, BUNDLE)
    print(f"fetch_chart_library: {PACKAGE} {VERSION} -> {BUNDLE} ({len(bundle) / 1e6:.1f} MB)")
    return 0


def add_fetch_subcommand(commands) -> None:
    parser = commands.add_parser("fetch-chart-library", help="download plotly.js's basic bundle (faster first page load)",
                                 description=__doc__.splitlines()[0])
    parser.set_defaults(func=lambda args: fetch_chart_library())
