"""Configure gunicorn for a stateless container (``gunicorn -c config/gunicorn.conf.py``)."""

from config import env

wsgi_app = "config.wsgi:application"
bind = f"0.0.0.0:{env.PORT}"
workers = env.WEB_CONCURRENCY
# Threads let a worker keep serving while one request waits on the network.
worker_class = "gthread"
threads = 4
# Cloud Run allows 10 s between SIGTERM and SIGKILL: finish in-flight requests in 8.
graceful_timeout = 8
timeout = 30
keepalive = 5
accesslog = "-"
# The worker's pid shows which process served each request.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms pid=%(p)s'
errorlog = "-"
# Nothing is written inside the container at run time: worker heartbeats go to
# memory, and gunicorn's control socket (a file under $HOME) is not created.
worker_tmp_dir = "/dev/shm"
control_socket_disable = True
