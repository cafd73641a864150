"""backend.py — the package's own PEP 517 build backend (pyproject.toml: backend-path), so that
`pip install ./python` needs nothing from an index: the package is pure Python (ctypes over a
compiled model's C API), and a wheel of it is a zip of rsr/ with its metadata. It writes only
into the directories pip gives it, never into the source tree."""
import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile

_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # python/


def _project():
    """name, version, summary and requires-python from pyproject.toml's [project] table."""
    text = open(os.path.join(_HERE, "pyproject.toml"), encoding="utf-8").read()
    table = text.split("[project]", 1)[1].split("\n[", 1)[0]

    def field(key):
        m = re.search(r'^%s\s*=\s*"([^"]*)"' % re.escape(key), table, re.M)
        return m.group(1) if m else ""

    return field("name"), field("version"), field("description"), field("requires-python")


def _metadata():
    name, version, summary, python = _project()
    readme = open(os.path.join(_HERE, "README.md"), encoding="utf-8").read()
    return (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: {summary}\n"
            f"License: Apache-2.0\nRequires-Python: {python}\nProvides-Extra: numpy\n"
            f"Requires-Dist: numpy; extra == \"numpy\"\nDescription-Content-Type: text/markdown\n\n{readme}")


def _sources():
    """(path in the archive, path on disk) of the package's modules, sorted."""
    pkg = os.path.join(_HERE, "rsr")
    return [(f"rsr/{f}", os.path.join(pkg, f)) for f in sorted(os.listdir(pkg)) if f.endswith(".py")]


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name, version, _, _ = _project()
    info = f"{name}-{version}.dist-info"
    files = [(arc, open(path, "rb").read()) for arc, path in _sources()]
    files.append((f"{info}/METADATA", _metadata().encode()))
    files.append((f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: rsr-backend\nRoot-Is-Purelib: true\n"
                                   b"Tag: py3-none-any\n"))
    record = []
    for arc, data in files:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{arc},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files.append((f"{info}/RECORD", ("\n".join(record) + "\n").encode()))
    wheel = f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel), "w", zipfile.ZIP_DEFLATED) as z:
        for arc, data in files:
            z.writestr(zipfile.ZipInfo(arc, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return wheel


def build_sdist(sdist_directory, config_settings=None):
    name, version, _, _ = _project()
    base = f"{name}-{version}"
    sdist = f"{base}.tar.gz"
    with tarfile.open(os.path.join(sdist_directory, sdist), "w:gz", format=tarfile.PAX_FORMAT) as t:
        for rel in ["pyproject.toml", "README.md", "_build/backend.py"] + [arc for arc, _ in _sources()]:
            t.add(os.path.join(_HERE, rel), arcname=f"{base}/{rel}")
        data = _metadata().encode()
        ti = tarfile.TarInfo(f"{base}/PKG-INFO")
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    return sdist
