"""Moves installed pure-Python distributions of a virtual environment into zip files.

Run by the Dockerfile's builder stage, with the environment's interpreter:

    python hack/image/zip_packages.py DISTRIBUTION...

Each distribution's import packages (its files outside the .dist-info
directory) go into `site-packages/<distribution>.zip`, which a
`<distribution>.pth` file puts on sys.path; the stdlib's zipimport imports
them from there. The zip holds every source file (tracebacks show their
lines) and beside each one its compiled module, "unchecked-hash" (PEP 552):
the image is immutable, so nothing is compared or compiled at import. The
.dist-info directory stays in site-packages, its RECORD rewritten to list the
zip and the .pth file instead of the moved files: the installed version is
what it was, for importlib.metadata and an SBOM scanner alike.

Why: `kubernetes` ships two generated API clients (sync and asyncio) of about
3,800 modules, 123 MB installed with their caches, 21 MB as a zip.
Only pure-Python distributions qualify (an extension module cannot be loaded
from a zip); one with one is refused.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import py_compile
import sys
import sysconfig
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

# A fixed time for every entry: the zip depends on the files only.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
EXTENSION_SUFFIXES = (".so", ".pyd")


def record_hash(data: bytes) -> str:
    """A RECORD line's hash of `data` (the wheel spec's urlsafe base64 sha256)."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def compiled(source: Path, shown_as: str) -> bytes:
    """`source` compiled to an unchecked-hash .pyc whose code names `shown_as`."""
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "module.pyc"
        py_compile.compile(
            str(source),
            cfile=str(target),
            dfile=shown_as,
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
        return target.read_bytes()


def add(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    entry = zipfile.ZipInfo(name, date_time=ZIP_TIME)
    entry.compress_type = zipfile.ZIP_DEFLATED
    entry.external_attr = 0o644 << 16
    archive.writestr(entry, data, compresslevel=9)


def zip_distribution(site_packages: Path, name: str) -> None:
    distribution = metadata.distribution(name)
    files = distribution.files or []
    (metadata_file,) = [path for path in files if path.name == "METADATA"]
    info_dir = Path(str(distribution.locate_file(metadata_file))).parent
    # Its files in site-packages (console scripts, in ../../../bin, stay).
    installed = {
        path.as_posix()
        for path in files
        if not path.parts[0].endswith(".dist-info") and path.parts[0] != ".."
    }
    zipped = sorted(path for path in installed if "/__pycache__/" not in f"/{path}")
    extensions = [path for path in zipped if path.endswith(EXTENSION_SUFFIXES)]
    if extensions:
        raise SystemExit(f"{name} has extension modules ({extensions[0]}): it cannot be zipped")
    zip_path = site_packages / f"{distribution.metadata['Name']}.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        for path in zipped:
            source = site_packages / path
            add(archive, path, source.read_bytes())
            if path.endswith(".py"):
                add(archive, path + "c", compiled(source, shown_as=f"{zip_path}/{path}"))
    pth_path = zip_path.with_suffix(".pth")
    pth_path.write_text(f"{zip_path}\n")

    for path in installed:
        (site_packages / path).unlink(missing_ok=True)
    # The directories the moved files leave empty, deepest first.
    directories = {
        parent
        for path in installed
        for parent in (site_packages / path).parents
        if parent.is_relative_to(site_packages) and parent != site_packages
    }
    for directory in sorted(directories, key=lambda d: len(d.parts), reverse=True):
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()

    record = info_dir / "RECORD"
    rows = csv.reader(io.StringIO(record.read_text()))
    kept = [row for row in rows if row and row[0] not in installed]
    for added in (zip_path, pth_path):
        data = added.read_bytes()
        kept.append([added.name, record_hash(data), str(len(data))])
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(kept)
    record.write_text(out.getvalue())
    print(f"{name}: {len(zipped)} files into {zip_path.name}, {zip_path.stat().st_size} bytes")


def main(names: list[str]) -> None:
    if sys.prefix == sys.base_prefix:
        raise SystemExit("run this with the virtual environment's interpreter")
    site_packages = Path(sysconfig.get_paths()["purelib"])
    for name in names:
        zip_distribution(site_packages, name)


if __name__ == "__main__":
    main(sys.argv[1:])
