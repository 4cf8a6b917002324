from __future__ import annotations

import base64
import hashlib
import io
import tarfile

from ml_dash.server import chart_library


def tarball(bundle: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for name, data in (("package/plotly-basic.min.js", bundle), ("package/LICENSE", b"MIT")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


class Answer(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def use(monkeypatch, tmp_path, tgz: bytes | None, bundle_sha256: str | None = None) -> None:
    """Point the fetcher at tmp_path and at ``tgz`` (None: no network), pinned to ``tgz``'s integrity."""
    monkeypatch.setattr(chart_library, "VENDOR", str(tmp_path / "vendor"))
    monkeypatch.setattr(chart_library, "BUNDLE", str(tmp_path / "vendor" / "plotly-basic.min.js"))
    if tgz is None:
        def offline(url, timeout):
            raise OSError("network unreachable")
        monkeypatch.setattr(chart_library.urllib.request, "urlopen", offline)
        return
    monkeypatch.setattr(chart_library.urllib.request, "urlopen", lambda url, timeout: Answer(tgz))
    monkeypatch.setattr(chart_library, "INTEGRITY", "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode())
    if bundle_sha256 is not None:
        monkeypatch.setattr(chart_library, "BUNDLE_SHA256", bundle_sha256)


def test_pinned_bundle_is_installed_with_its_license(tmp_path, monkeypatch):
    """A tarball matching both pins is unpacked: the bundle and plotly.js's license land in the vendor dir."""
    bundle = b"/* plotly.js basic */ window.Plotly = {};"
    use(monkeypatch, tmp_path, tarball(bundle), hashlib.sha256(bundle).hexdigest())
    assert chart_library.fetch_chart_library() == 0
    assert (tmp_path / "vendor" / "plotly-basic.min.js").read_bytes() == bundle
    assert (tmp_path / "vendor" / "LICENSE.plotly.js").read_bytes() == b"MIT"


def test_a_bundle_not_matching_its_pin_is_refused(tmp_path, monkeypatch):
    """The tarball passes the registry integrity but its bundle is not the pinned file: nothing is installed."""
    use(monkeypatch, tmp_path, tarball(b"tampered"))
    assert chart_library.fetch_chart_library() == 1
    assert not (tmp_path / "vendor" / "plotly-basic.min.js").exists()


def test_a_tarball_not_matching_the_registry_integrity_is_refused(tmp_path, monkeypatch):
    """A download whose sha512 differs from the pinned integrity is refused before it is opened."""
    use(monkeypatch, tmp_path, tarball(b"x"))
    monkeypatch.setattr(chart_library, "INTEGRITY", "sha512-AAAA")
    assert chart_library.fetch_chart_library() == 1
    assert not (tmp_path / "vendor").exists()


def test_offline_set_up_goes_on_without_the_bundle(tmp_path, monkeypatch, capsys):
    """Without network the fetch says so and succeeds: the server serves the plotly package's full bundle."""
    use(monkeypatch, tmp_path, None)
    assert chart_library.fetch_chart_library() == 0
    assert "full" in capsys.readouterr().err and not (tmp_path / "vendor").exists()
