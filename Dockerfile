# A stateless container for the shop: sessions and orders live in PostgreSQL and Redis.

# The official Python image by default. Any image with the same interface will do
# (`python` and `pip` on PATH, Python 3.11): the harness passes one built from
# Debian's packages where no registry can be reached (harness/servers/image.py).
ARG PYTHON_IMAGE=python:3.11-slim

# --- Build: dependencies into a virtualenv, in their own cached layer ---------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
# A network that inspects TLS needs pip to trust its CA: the build passes the
# bundle as a secret, mounted for this step only and never part of a layer.
RUN --mount=type=secret,id=pip-ca \
    if [ -f /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi; \
    /opt/venv/bin/pip install -r /tmp/requirements.txt

# --- Run ------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=config.settings.production \
    PORT=8000
RUN useradd --system --uid 10001 --no-create-home --home-dir /nonexistent shop
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=root:root . .
# Static files are collected (hashed, compressed) and bytecode compiled at build
# time, so nothing is written inside the container at run time. The values here
# only satisfy the settings' checks; no database is touched.
RUN SECRET_KEY=collectstatic-only DATABASE_URL=postgres://build@localhost/build \
        python manage.py collectstatic --noinput -v0 \
    && python -m compileall -q /app
USER shop
EXPOSE 8000
# Migrations run as a separate job before a deploy, never at container start.
CMD ["gunicorn", "-c", "config/gunicorn.conf.py"]
