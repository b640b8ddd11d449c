"""The operator image as `hack/image/build.sh` writes it: its size, its labels,
and the SBOM beside its OCI archive in dist/.

Read straight from the archive (index, manifest, config, layers): no
container runtime needed. The image is built on first use (see
`testground.images`).
"""

from __future__ import annotations

import email.parser
import gzip
import json
import re
import subprocess
import tarfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import pytest

from testground.images import REPO, Image, ensure_images
from tests.pins import canonical, pinned_versions

# The uncompressed size the image must stay within (the sum of its layers as
# tar streams). It was 309 MB before the runtime got its own base and
# kubernetes its zip; docs/development.md has the table.
MAX_MEGABYTES = 180
SITE_PACKAGES = "opt/egain-token-operator/lib/python3.11/site-packages/"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


@dataclass(frozen=True)
class Layer:
    digest: str
    compressed: int
    uncompressed: int
    created_by: str


class Archive:
    """An OCI archive of one image, opened for reading."""

    def __init__(self, path: Path) -> None:
        self.tar = tarfile.open(path)  # noqa: SIM115 (closed by the fixture)
        index = self.json("index.json")
        (descriptor,) = index["manifests"]
        self.manifest = self.json(self.blob_name(descriptor["digest"]))
        self.config = self.json(self.blob_name(self.manifest["config"]["digest"]))

    @staticmethod
    def blob_name(digest: str) -> str:
        algorithm, _, hexdigest = digest.partition(":")
        return f"blobs/{algorithm}/{hexdigest}"

    def json(self, name: str) -> Any:
        member = self.tar.extractfile(name)
        assert member is not None
        return json.load(member)

    def layer_stream(self, descriptor: dict[str, Any]) -> IO[bytes]:
        stream = self.tar.extractfile(self.blob_name(descriptor["digest"]))
        assert stream is not None
        if descriptor["mediaType"].endswith("+gzip"):
            return cast(IO[bytes], gzip.GzipFile(fileobj=stream))
        return stream

    def layers(self) -> list[Layer]:
        history = [step for step in self.config["history"] if not step.get("empty_layer")]
        found = []
        for descriptor, step in zip(self.manifest["layers"], history, strict=True):
            stream = self.layer_stream(descriptor)
            size = 0
            while chunk := stream.read(1 << 20):
                size += len(chunk)
            created_by = step.get("created_by", "")
            found.append(Layer(descriptor["digest"], descriptor["size"], size, created_by))
        return found

    def files(self) -> Iterator[tuple[tarfile.TarInfo, tarfile.TarFile]]:
        """Every member of every layer, lowest layer first."""
        for descriptor in self.manifest["layers"]:
            with tarfile.open(fileobj=self.layer_stream(descriptor), mode="r|") as layer:
                for member in layer:
                    yield member, layer


@pytest.fixture(scope="module")
def operator_image() -> Image:
    return ensure_images().operator


@pytest.fixture(scope="module")
def archive(operator_image: Image) -> Iterator[Archive]:
    opened = Archive(operator_image.archive)
    yield opened
    opened.tar.close()


def installed_distributions(archive: Archive) -> dict[str, str]:
    """Name and version of every distribution in the image's virtual environment,
    from the METADATA of its .dist-info directories."""
    found = {}
    pattern = re.compile(re.escape(SITE_PACKAGES) + r"[^/]+\.dist-info/METADATA")
    for member, layer in archive.files():
        if pattern.fullmatch(member.name.removeprefix("./")):
            data = layer.extractfile(member)
            assert data is not None
            headers = email.parser.BytesHeaderParser().parsebytes(data.read())
            found[canonical(headers["Name"])] = headers["Version"]
    return found


def test_the_image_is_within_its_size(archive: Archive) -> None:
    layers = archive.layers()
    for layer in layers:
        print(
            f"{layer.digest[7:19]}  {layer.compressed / 1e6:6.1f} MB compressed  "
            f"{layer.uncompressed / 1e6:6.1f} MB  {layer.created_by[:70]}"
        )
    total = sum(layer.uncompressed for layer in layers) / 1e6
    print(
        f"total {sum(layer.compressed for layer in layers) / 1e6:.1f} MB compressed, {total:.1f} MB"
    )
    assert total <= MAX_MEGABYTES


def test_the_image_carries_the_opencontainers_labels(archive: Archive) -> None:
    labels = archive.config["config"]["Labels"]
    project = PYPROJECT["project"]
    assert labels["org.opencontainers.image.title"] == project["name"]
    assert labels["org.opencontainers.image.description"] == project["description"]
    assert labels["org.opencontainers.image.version"] == project["version"]
    assert labels["org.opencontainers.image.licenses"] == project["license"]
    assert labels["org.opencontainers.image.source"] == project.get("urls", {}).get("Source", "")

    # The commit that last changed what the image is built from: no later
    # commit touches those files (a dirty work tree is marked as such).
    revision = labels["org.opencontainers.image.revision"]
    commit = revision.removesuffix("-dirty")
    git = ["git", "-C", str(REPO)]
    subprocess.run([*git, "cat-file", "-e", f"{commit}^{{commit}}"], check=True)
    built_from = ["Dockerfile", ".dockerignore"] + [
        line[1:] for line in (REPO / ".dockerignore").read_text().splitlines() if line[:1] == "!"
    ]
    later = subprocess.run(
        [*git, "log", "--format=%H", f"{commit}..HEAD", "--", *built_from],
        check=True,
        capture_output=True,
        text=True,
    )
    assert later.stdout == ""


def test_the_sbom_lists_every_python_package_of_the_image_at_its_pinned_version(
    operator_image: Image, archive: Archive
) -> None:
    tag = operator_image.reference.rpartition(":")[2]
    sbom_path = REPO / "dist" / f"egain-token-operator-{tag}.spdx.json"
    sbom = json.loads(sbom_path.read_text())
    assert sbom["spdxVersion"].startswith("SPDX-")
    listed: dict[str, set[str]] = {}
    for package in sbom["packages"]:
        for ref in package.get("externalRefs", []):
            purl = re.fullmatch(r"pkg:pypi/([^@]+)@([^?#]+).*", ref["referenceLocator"])
            if purl:
                listed.setdefault(canonical(purl[1]), set()).add(purl[2])

    installed = installed_distributions(archive)
    project = canonical(PYPROJECT["project"]["name"])
    assert installed.pop(project) == PYPROJECT["project"]["version"]
    pinned = pinned_versions()
    # Everything the image installs is pinned, at the pinned version; the dev
    # extra is not in the image.
    assert {name: pinned.get(name) for name in installed} == installed
    assert "pytest" not in installed and "kubernetes" in installed
    missing = {
        name: version
        for name, version in installed.items()
        if version not in listed.get(name, set())
    }
    assert missing == {}, f"the SBOM lacks {missing}"
    # The Debian side too: the interpreter the environment runs on.
    assert any(package["name"] == "python3.11-minimal" for package in sbom["packages"])
