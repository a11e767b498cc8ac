"""Configure gunicorn for a stateless container (``gunicorn -c config/gunicorn.conf.py``)."""

import os
import tempfile

from config import env
from config.logs import json_formatter

wsgi_app = "config.wsgi:application"
bind = f"0.0.0.0:{env.PORT}"
workers = env.WEB_CONCURRENCY
# Threads let a worker keep serving while one request waits on the network.
worker_class = "gthread"
threads = 4
# Cloud Run allows 10 s between SIGTERM and SIGKILL: finish in-flight requests in 8.
graceful_timeout = 8
timeout = 30
# Idle connections from the balancer close after this: the balancer's own idle
# timeout towards the shop must be shorter (the harness's nginx: 4 s), or a
# request it sends on a connection closing here fails.
keepalive = 5
# The shop logs each request itself, with its request id (shop.logs); gunicorn's
# own lines go to standard output too, as JSON unless LOG_FORMAT=text.
accesslog = None
if (env.LOG_FORMAT or "json") == "json":
    _formatter = json_formatter() | {"fmt": "%(levelname)s %(message)s %(name)s %(process)d"}
else:
    _formatter = {"format": "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"}
logconfig_dict = {
    "formatters": {"gunicorn": _formatter},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "gunicorn", "stream": "ext://sys.stdout"}},
    "loggers": {"gunicorn.error": {"level": env.LOG_LEVEL, "handlers": ["console"], "propagate": False}},
}
# Nothing is written inside the container at run time: worker heartbeats go to
# memory, and gunicorn's control socket (a file under $HOME) is not created.
worker_tmp_dir = "/dev/shm"
control_socket_disable = True

# Metrics of every worker (prometheus-client's multiprocess mode): each worker
# writes its figures to files in a directory of the master's, on a tmpfs.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(
    prefix="shop-metrics-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None
)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir  # the workers inherit it


def child_exit(server, worker):
    """Keep a dead worker's counters, drop its live gauges."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
