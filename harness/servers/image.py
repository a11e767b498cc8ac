"""Build the shop's image with podman.

    python -m harness.servers.image build    # what `make image` runs: prints the tag, base and size

The Dockerfile's base is the official Python image. Where no registry can be
reached, a stand-in base with the same interface (``python`` and ``pip`` on PATH,
Python 3.11) is built from Debian's packages with mmdebstrap and imported once.

What podman needs on this kind of machine, found by trying:
- crun fails ("cgroups in hybrid mode not supported"): every command names runc;
- podman's default rlimits are refused at run: a containers.conf sets none;
- pip in a build reaches the package index only when it trusts the host's CA
  bundle: the bundle is a build secret, mounted for the install step only.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.servers.backing import ServiceUnavailable, apt_install

# The repository's root: harness/servers/image.py is two packages down.
BASE_DIR = Path(__file__).resolve().parents[2]

IMAGE = "localhost/evergreen-shop:latest"
OFFICIAL_BASE = "docker.io/library/python:3.11-slim"
STANDIN_BASE = "localhost/evergreen-python-standin:3.11-bookworm"
PODMAN_STATE = BASE_DIR / ".podman"
# podman's default rlimits are refused at run on this kind of machine.
CONTAINERS_CONF = "[containers]\ndefault_ulimits = []\n"


# --- podman ---------------------------------------------------------------------------------------
def ensure_podman() -> None:
    """Install podman and runc with apt when missing, like the other services."""
    missing = [name for name, binary in (("podman", "podman"), ("runc", "runc")) if not shutil.which(binary)]
    if missing:
        apt_install(*missing)


def podman_environ() -> dict[str, str]:
    conf = PODMAN_STATE / "containers.conf"
    if not conf.exists() or conf.read_text() != CONTAINERS_CONF:
        PODMAN_STATE.mkdir(exist_ok=True)
        conf.write_text(CONTAINERS_CONF)
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def podman_command(*args: str) -> list[str]:
    return ["podman", "--runtime", "runc", *args]


def podman(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run one podman command and return what it printed."""
    kwargs.setdefault("capture_output", True)
    return subprocess.run(podman_command(*args), env=podman_environ(), text=True, check=check, **kwargs)


def image_exists(image: str) -> bool:
    return podman("image", "exists", image, check=False).returncode == 0


def image_size(image: str) -> int:
    """Return the image's size in bytes, as ``podman images`` counts it."""
    return int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())


def image_user(image: str) -> str:
    return podman("image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip()


# --- The base image -------------------------------------------------------------------------------
def base_image() -> str:
    """Return the base to build on: $PYTHON_IMAGE, else the official image, else the stand-in."""
    if os.environ.get("PYTHON_IMAGE"):
        return os.environ["PYTHON_IMAGE"]
    if image_exists(OFFICIAL_BASE) or podman("pull", "--quiet", OFFICIAL_BASE, check=False).returncode == 0:
        return OFFICIAL_BASE
    if not image_exists(STANDIN_BASE):
        build_standin_base()
    return STANDIN_BASE


def build_standin_base() -> None:
    """Build the stand-in base from Debian's packages: Python 3.11, with ``python`` and ``pip`` from a venv on PATH."""
    if not shutil.which("mmdebstrap"):
        apt_install("mmdebstrap")
    print(f"image: no registry answers; building the stand-in base {STANDIN_BASE} with mmdebstrap", flush=True)
    with tempfile.TemporaryDirectory(prefix="shop-base-") as workdir:
        rootfs = Path(workdir) / "rootfs.tar"
        subprocess.run(
            [
                "mmdebstrap",
                "--variant=minbase",
                "--include=python3.11,python3.11-venv,ca-certificates",
                # Documentation and translations are no use in a container.
                *(f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("doc", "man", "info", "locale")),
                "--dpkgopt=path-include=/usr/share/doc/*/copyright",
                '--customize-hook=chroot "$1" python3.11 -m venv /opt/python',
                "bookworm",
                str(rootfs),
            ],
            check=True,
            capture_output=True,
        )
        path = "/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        podman("import", "--change", f"ENV PATH={path}", "--change", 'CMD ["python3"]', str(rootfs), STANDIN_BASE)


def pip_ca_bundle() -> str | None:
    """Return the CA bundle the host's pip trusts (PIP_CERT or ``pip config``), if it names one."""
    if os.environ.get("PIP_CERT"):
        return os.environ["PIP_CERT"]
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    found = re.search(r"^\S*\.cert='([^']+)'$", listed, re.MULTILINE)
    return found.group(1) if found else None


# --- Building ------------------------------------------------------------------------------------
def build_image(*, tag: str = IMAGE, context: Path = BASE_DIR) -> str:
    """Build the Dockerfile in ``context`` as ``tag`` (layers reused when nothing changed); return the tag."""
    ensure_podman()
    args = ["build", "--network=host", "--layers", "--build-arg", f"PYTHON_IMAGE={base_image()}", "--tag", tag]
    bundle = pip_ca_bundle()
    if bundle and Path(bundle).exists():
        args += ["--secret", f"id=pip-ca,src={bundle}"]
    result = podman(*args, "--file", str(context / "Dockerfile"), str(context), check=False)
    if result.returncode != 0:
        raise ServiceUnavailable(f"podman build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return tag


def main(argv: list[str]) -> int:
    if argv[1:] == ["build"]:
        try:
            tag = build_image()
        except (ServiceUnavailable, subprocess.CalledProcessError) as error:
            print(f"image: {error}", file=sys.stderr)
            return 1
        image_id = podman("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()[:12]
        print(f"Built {tag} ({image_id}) on {base_image()}: {image_size(tag) / 1e6:.0f} MB")
        print("Run it: podman run --rm --network=host -e SECRET_KEY=… -e DATABASE_URL=… -e REDIS_URL=… " + tag)
        return 0
    print("usage: python -m harness.servers.image build", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
