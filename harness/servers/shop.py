"""Run the shop under gunicorn with production settings, as a container would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from harness.servers.backing import ServiceUnavailable, free_port

# The repository's root: harness/servers/shop.py is two packages down.
BASE_DIR = Path(__file__).resolve().parents[2]
PRODUCTION_SETTINGS = "config.settings.production"
# Stands in for a real secret on test servers only; long and varied enough for check --deploy.
TEST_SECRET_KEY = "harness-only-secret-7f3a9c1e5b2d8f4a6c0e9b3d7f1a5c8e2b6d0f4a9c3e7b1d5f8a2c6e0b4d"


def production_env(**overrides: str) -> dict[str, str]:
    """Return an environment for production settings on plain-HTTP loopback."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": PRODUCTION_SETTINGS,
        "SECRET_KEY": TEST_SECRET_KEY,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "HTTPS": "false",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(overrides)
    return env


def collectstatic(env: dict[str, str]) -> None:
    """Collect static files with hashed, compressed names, as the image build does."""
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=BASE_DIR,
        env=env,
        check=True,
    )


@dataclass
class ShopServer:
    """One gunicorn instance of the shop on its own loopback port."""

    env: dict[str, str]
    port: int = field(default_factory=free_port)
    workers: int = 2
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    # Detached: survives the process that started it (the cluster command line).
    detach: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait: bool = True) -> ShopServer:
        env = {**self.env, "PORT": str(self.port), "WEB_CONCURRENCY": str(self.workers)}
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py"],
            cwd=BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group, so a SIGKILL takes the workers too, as when
            # a container dies; detached, it outlives the process that started it.
            start_new_session=self.detach,
            process_group=None if self.detach else 0,
        )
        if wait:
            self.wait_healthy()
        return self

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Wait until /healthz answers 200, or raise with the reason."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServiceUnavailable(f"gunicorn on {self.port} exited with {self.process.returncode}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise ServiceUnavailable(f"gunicorn on {self.port} not healthy after {timeout:.0f}s")

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Send ``sig`` and wait for the process to exit; return its exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            if sig == signal.SIGKILL:
                os.killpg(self.process.pid, signal.SIGKILL)
            else:
                self.process.send_signal(sig)  # gunicorn's master stops its workers
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        code = self.process.returncode
        self.process = None
        return code
