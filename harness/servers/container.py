"""Run containers of the shop's image, hardened as a platform runs them."""

from __future__ import annotations

import json
import re
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass

from harness.servers.backing import ServiceUnavailable
from harness.servers.image import BASE_DIR, IMAGE, podman, podman_command, podman_environ
from harness.servers.shop import ShopServer

# Every harness container carries it, so leftovers of an interrupted run can be found.
LABEL = "evergreen-shop.harness=1"
# How a platform runs it: read-only root with no tmpfs added (gunicorn's heartbeat
# files go to /dev/shm), no capabilities, no privilege gain, the host's network.
HARDENED = (
    "--network=host",
    "--read-only",
    "--read-only-tmpfs=false",
    "--cap-drop=all",
    "--security-opt=no-new-privileges",
)
# Cloud Run sends SIGTERM, then SIGKILL 10 s later.
STOP_GRACE_SECONDS = 10


def remove_leftover_containers() -> None:
    """Remove harness containers an interrupted run left behind."""
    names = podman("ps", "--all", "--filter", f"label={LABEL}", "--format", "{{.Names}}").stdout.split()
    if names:
        podman("rm", "--force", *names, check=False)


def app_variables() -> set[str]:
    """Return the names of the variables the shop reads: the ones config/env.py names, and its settings module."""
    source = (BASE_DIR / "config" / "env.py").read_text()
    return {*re.findall(r'_env\.\w+\(\s*"([A-Z0-9_]+)"', source), "DJANGO_SETTINGS_MODULE"}


def env_options(env: dict[str, str]) -> list[str]:
    """Return ``-e NAME=value`` for the shop's own variables in ``env``: a container gets nothing of the host's."""
    names = app_variables()
    return [option for name, value in sorted(env.items()) if name in names for option in ("-e", f"{name}={value}")]


def run_job(image: str, env: dict[str, str], *command: str) -> subprocess.CompletedProcess:
    """Run one command in a throwaway container of ``image`` (a migration job), failing loudly."""
    result = podman("run", "--rm", "--label", LABEL, *HARDENED, *env_options(env), image, *command, check=False)
    if result.returncode != 0:
        raise ServiceUnavailable(f"{' '.join(command)} in {image} failed:\n{result.stdout}\n{result.stderr}")
    return result


@dataclass
class ShopContainer(ShopServer):
    """One container of the shop's image on its own port of the host's network, hardened as a platform runs it.

    Each start is a new container (``--rm``): stopping and starting again
    replaces it, as a platform replaces a container. The podman client stays
    attached, so ``process`` is alive exactly while the container runs, and the
    container's standard output is the log file.
    """

    image: str = IMAGE
    # Run as this UID (any number) instead of the image's own user.
    user: str | None = None
    name: str = ""
    started_at: float = 0.0
    extra_options: tuple[str, ...] = ()

    def start(self, *, wait: bool = True) -> ShopContainer:
        self.name = f"shop-{secrets.token_hex(4)}"
        env = {**self.env, "PORT": str(self.port), "WEB_CONCURRENCY": str(self.workers)}
        user = ("--user", self.user) if self.user else ()
        command = podman_command(
            "run", "--rm", "--name", self.name, "--label", LABEL, *HARDENED, *user, *self.extra_options,
            f"--stop-timeout={STOP_GRACE_SECONDS}", *env_options(env), self.image,
        )  # fmt: skip
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            command, env=podman_environ(), stdout=log, stderr=subprocess.STDOUT, process_group=0
        )
        if wait:
            self.wait_healthy()
        return self

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        """SIGKILL the container, or stop it as a platform does (SIGTERM, SIGKILL after 10 s); return its exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            if sig == signal.SIGKILL:
                podman("kill", "--signal", "KILL", self.name, check=False)
            else:
                podman("stop", "--time", str(STOP_GRACE_SECONDS), self.name, check=False)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                podman("rm", "--force", self.name, check=False)
                self.process.wait()
        code = self.process.returncode
        self.process = None
        return code

    def inspect(self) -> dict:
        return json.loads(podman("inspect", self.name).stdout)[0]
