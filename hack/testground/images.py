"""The container images of the test ground's kubelet node.

`ensure_images()` builds (first time) or finds (in the cache) three images with
`hack/image/build.sh`: the operator, built from the Dockerfile; its Debian base,
which the tests also run as the consumer image (it has sh, cat, date, sleep);
and the Pod sandbox ("pause") image. `import_images()` loads them into the
namespace the CRI uses of a containerd; `evict()` takes one out again, content
and all, so that the node has to pull it from a registry.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "hack" / "image" / "build.sh"
CRI_NAMESPACE = "k8s.io"


@dataclass(frozen=True)
class Image:
    """One image: its reference as a Pod spec writes it, and its OCI archive."""

    reference: str
    archive: Path


@dataclass(frozen=True)
class Images:
    operator: Image
    pause: Image
    base: Image

    def all(self) -> tuple[Image, Image, Image]:
        return (self.pause, self.base, self.operator)


def ensure_images() -> Images:
    """Build (first time) or take from the cache the three images.

    The first build needs root, the Debian package mirrors, PyPI and Go; it
    takes a minute or two. Later calls take a fraction of a second.
    """
    result = subprocess.run(
        [str(BUILD_SCRIPT), "--list"],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
        timeout=3600,
    )
    *rows, operator_reference = result.stdout.strip().splitlines()
    found: dict[str, Image] = {}
    for row in rows:
        kind, reference, archive = row.split("\t")
        found[kind] = Image(reference=reference, archive=Path(archive))
    missing = [kind for kind in ("operator", "pause", "base") if kind not in found]
    if missing:
        raise RuntimeError(f"{BUILD_SCRIPT} did not list {', '.join(missing)}")
    images = Images(operator=found["operator"], pause=found["pause"], base=found["base"])
    if images.operator.reference != operator_reference:
        raise RuntimeError(f"{BUILD_SCRIPT} printed {operator_reference!r} last")
    absent = [str(image.archive) for image in images.all() if not image.archive.is_file()]
    if absent:
        raise RuntimeError(f"{BUILD_SCRIPT} did not write {', '.join(absent)}")
    return images


def import_images(ctr_address: str, images: Images, *, snapshotter: str | None = None) -> None:
    """Import the three images into the `k8s.io` namespace of the containerd at `ctr_address`.

    The CRI then finds them under their references, so Pods with
    `imagePullPolicy: IfNotPresent` (or `Never`) run them without a registry,
    and the pause image serves as `sandbox_image`. `ctr images import` also
    unpacks each image into `snapshotter` (by default containerd's default,
    overlayfs, which is the CRI's default too): the CRI would unpack an image
    on its first container otherwise, so this only moves that work out of the
    first Pod start. Pass the CRI's snapshotter when it is configured with
    another one. Importing an image that is already there is quick and
    harmless.
    """
    ctr = ["ctr", "--address", ctr_address, "--namespace", CRI_NAMESPACE]
    for image in images.all():
        command = [*ctr, "images", "import"]
        if snapshotter is not None:
            command += ["--snapshotter", snapshotter]
        subprocess.run(
            [*command, str(image.archive)], check=True, stdout=subprocess.DEVNULL, timeout=600
        )
    listed = subprocess.run(
        [*ctr, "images", "list", "--quiet"],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
        timeout=60,
    ).stdout.split()
    absent = [image.reference for image in images.all() if image.reference not in listed]
    if absent:
        raise RuntimeError(f"containerd at {ctr_address} lacks {', '.join(absent)} after import")


def _ctr(ctr_address: str | Path, *args: str) -> str:
    return subprocess.run(
        ["ctr", "--address", str(ctr_address), "--namespace", CRI_NAMESPACE, *args],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
        timeout=120,
    ).stdout


def references(ctr_address: str | Path) -> dict[str, str]:
    """Every image reference in the CRI's namespace, with the digest of its manifest."""
    listed = _ctr(ctr_address, "images", "list").splitlines()[1:]
    return {row.split()[0]: row.split()[2] for row in listed if row.strip()}


def evict(ctr_address: str | Path, image: Image) -> None:
    """Remove `image` from the containerd at `ctr_address`: every reference to
    its manifest (the CRI adds `repository@digest` and `sha256:<config>` ones)
    and then, by garbage collection, the layers and configuration no other
    image uses. The node then has to pull the image to run it.
    """
    found = references(ctr_address)
    digest = found.get(image.reference)
    if digest is None:
        return
    remove(ctr_address, [name for name, target in found.items() if target == digest])
    left = [name for name, target in references(ctr_address).items() if target == digest]
    if left:
        raise RuntimeError(f"containerd at {ctr_address} still holds {', '.join(left)}")


def remove(ctr_address: str | Path, names: list[str]) -> None:
    """Remove the image references `names`, and the content only they held."""
    if names:
        _ctr(ctr_address, "images", "remove", "--sync", *names)
