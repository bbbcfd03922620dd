# syntax=docker/dockerfile:1
# One image for every role: web (gunicorn, the default command), worker, beat and the one-shot migrate.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VAR_DIR=/app/var

WORKDIR /app

# Dependencies first, so a code change does not reinstall them. Every pinned package ships a
# manylinux wheel (psycopg[binary] included), so no compiler is needed.
COPY requirements.txt .
RUN pip install -r requirements.txt

# The build context leaves out what production never runs: tests, benchmarks and the amoCRM sandbox (.dockerignore).
COPY . .

# The translation catalogues compiled in the image: any .mo that does not match its .po is rebuilt (Babel,
# config/management/commands/compile_catalogues.py; no gettext package needed).
RUN DEBUG=true ENV_FILE= python manage.py compile_catalogues --verbosity 0

# Static files are collected into the image and served by whitenoise (hashed names, gzip).
# DEBUG=false picks the manifest storage used at run time; settings refuse to load without
# these two keys when DEBUG is off, so build-only placeholders stand in (nothing is encrypted
# or signed at build time, and the real values come from .env when the container runs).
RUN DEBUG=false \
    SECRET_KEY=build-only-placeholder-not-used-at-run-time \
    FIELD_ENCRYPTION_KEY=YnVpbGQtb25seS1wbGFjZWhvbGRlci1rZXktMzJieXQ= \
    ENV_FILE= \
    python manage.py collectstatic --no-input --verbosity 0

# Code and static files stay owned by root (read-only to the app); only var/ is writable.
RUN useradd --system --user-group --create-home --home-dir /home/app app \
    && mkdir -p /app/var/metrics \
    && chown -R app:app /app/var
USER app

EXPOSE 8000
CMD ["gunicorn", "-c", "python:config.gunicorn", "config.wsgi"]
