"""docker-compose.yml, Dockerfile and .env.example agree with each other and with config/settings.py.

No Docker engine runs here, so the files are read and checked as data.
"""

import re

import pytest
import yaml

from .support import BASE_DIR

APP_SERVICES = {"migrate", "web", "worker", "beat"}
# Variables that are not Django settings, and who reads them.
NOT_SETTINGS = {
    "POSTGRES_PASSWORD": "the db service (and the DATABASE_URL compose builds from it)",
    "POSTGRES_DB": "the db service",
    "POSTGRES_USER": "the db service",
    "DJANGO_SUPERUSER_USERNAME": "manage.py createsuperuser --no-input (bin/run-dev)",
    "DJANGO_SUPERUSER_PASSWORD": "manage.py createsuperuser --no-input (bin/run-dev)",
    "DJANGO_SUPERUSER_EMAIL": "manage.py createsuperuser --no-input (bin/run-dev)",
    "WEB_WORKERS": "gunicorn's --workers in bin/run-dev",
    "WEB_THREADS": "gunicorn's --threads in bin/run-dev",
    "RELOAD": "gunicorn's --reload in bin/run-dev",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def settings_variables() -> set[str]:
    """Every variable config/settings.py reads through django-environ, itself or in the config modules it
    imports a group of settings from (`from config.<module> import read`)."""
    source = (BASE_DIR / "config" / "settings.py").read_text()
    for module in re.findall(r"^from config\.(\w+) import read\b", source, flags=re.MULTILINE):
        source += (BASE_DIR / "config" / f"{module}.py").read_text()
    names = set(re.findall(r"\benv(?:\.\w+)?\(\s*\"([A-Z][A-Z0-9_]*)\"", source))
    names |= set(re.findall(r"_required_in_production\(\s*\"([A-Z][A-Z0-9_]*)\"", source))
    return names


def env_example_variables() -> set[str]:
    text = (BASE_DIR / ".env.example").read_text()
    return set(re.findall(r"^([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def compose_variables() -> set[str]:
    """Names the compose file interpolates (${NAME...}) or sets in an environment: block."""
    text = (BASE_DIR / "docker-compose.yml").read_text()
    names = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    for service in yaml.safe_load(text)["services"].values():
        names |= set(service.get("environment") or {})
    return names


def command(service: dict) -> str:
    value = service["command"]
    return " ".join(value) if isinstance(value, list) else value


def test_it_defines_the_database_broker_migrate_and_three_app_services(services):
    assert set(services) == {"db", "redis", *APP_SERVICES}
    assert services["db"]["image"].split(":")[1].startswith("16")
    assert services["redis"]["image"].split(":")[1].startswith("7")


def test_the_app_services_run_gunicorn_a_worker_beat_and_migrations(services):
    assert command(services["web"]).startswith("gunicorn -c python:config.gunicorn config.wsgi")
    assert command(services["worker"]).startswith("celery -A config worker")
    assert command(services["beat"]).startswith("celery -A config beat")
    assert command(services["migrate"]) == "python manage.py migrate --no-input"


def test_the_app_services_share_one_image_and_read_dot_env(services):
    images = {services[name]["image"] for name in APP_SERVICES}
    assert len(images) == 1
    for name in APP_SERVICES:
        assert services[name]["build"] == "."
        assert services[name]["env_file"] in (".env", [".env"])
        environment = services[name]["environment"]
        assert environment["DATABASE_URL"].startswith("postgres://") and "@db:5432/" in environment["DATABASE_URL"]
        assert environment["REDIS_URL"].startswith("redis://redis:6379/")


def test_migrations_run_once_before_the_app_starts(services):
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"] == {
            "db": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }
        assert services[name]["restart"] == "unless-stopped"


def test_long_running_services_have_healthchecks(services):
    assert "pg_isready" in services["db"]["healthcheck"]["test"]
    assert "redis-cli" in services["redis"]["healthcheck"]["test"]
    assert services["web"]["healthcheck"]["test"] == ["CMD", "python", "docker/healthcheck.py"]
    assert "inspect ping" in " ".join(services["worker"]["healthcheck"]["test"])
    assert (BASE_DIR / "docker" / "healthcheck.py").is_file()


def test_postgres_keeps_its_data_in_a_named_volume(compose, services):
    mounts = services["db"]["volumes"]
    assert "pgdata:/var/lib/postgresql/data" in mounts
    assert "pgdata" in compose["volumes"]


def test_the_web_port_is_published_for_a_reverse_proxy_only(services):
    assert services["web"]["ports"] == ["127.0.0.1:${PORT:-8000}:8000"]


def test_every_variable_in_env_example_and_compose_is_a_setting_or_accounted_for():
    settings = settings_variables()
    unknown = (env_example_variables() | compose_variables()) - settings - set(NOT_SETTINGS)

    assert not unknown, f"not read by config/settings.py: {sorted(unknown)}"


def test_every_variable_settings_read_is_documented_in_env_example():
    missing = settings_variables() - env_example_variables()

    assert not missing, f"add to .env.example with a one-line comment: {sorted(missing)}"


def test_every_variable_compose_interpolates_is_in_env_example():
    text = (BASE_DIR / "docker-compose.yml").read_text()

    missing = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text)) - env_example_variables()

    assert not missing


def test_every_variable_in_env_example_has_a_comment_above_it():
    lines = (BASE_DIR / ".env.example").read_text().splitlines()
    uncommented = [
        line.split("=")[0]
        for index, line in enumerate(lines)
        if re.match(r"^[A-Z][A-Z0-9_]*=", line) and not any(
            previous.startswith("#") for previous in lines[max(index - 3, 0) : index]
        )
    ]

    assert not uncommented


def test_the_dockerfile_builds_a_slim_non_root_image_with_static_files():
    dockerfile = (BASE_DIR / "Dockerfile").read_text()

    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, flags=re.MULTILINE)
    assert "collectstatic --no-input" in dockerfile
    user = re.findall(r"^USER (\S+)", dockerfile, flags=re.MULTILINE)
    assert user and user[-1] not in ("root", "0")
    assert re.search(r"^CMD \[\"gunicorn\", \"-c\", \"python:config.gunicorn\"", dockerfile, flags=re.MULTILINE)
    assert ".env" in (BASE_DIR / ".dockerignore").read_text().split()


def test_whitenoise_serves_static_files(settings):
    assert "whitenoise.middleware.WhiteNoiseMiddleware" in settings.MIDDLEWARE
    index = settings.MIDDLEWARE.index
    assert index("django.middleware.security.SecurityMiddleware") < index("whitenoise.middleware.WhiteNoiseMiddleware")


def test_every_variable_is_in_the_readme_configuration_table():
    readme = (BASE_DIR / "README.md").read_text()
    table = readme[readme.index("## Configuration") : readme.index("## Architecture")]
    rows = " ".join(line for line in table.splitlines() if line.startswith("| `"))
    # `DJANGO_SUPERUSER_USERNAME`, `_PASSWORD`, `_EMAIL` share one row.
    rows = rows.replace("`_PASSWORD`", "`DJANGO_SUPERUSER_PASSWORD`").replace("`_EMAIL`", "`DJANGO_SUPERUSER_EMAIL`")

    missing = {name for name in settings_variables() | env_example_variables() if f"`{name}`" not in rows}

    assert not missing, f"add to README's configuration table: {sorted(missing)}"
