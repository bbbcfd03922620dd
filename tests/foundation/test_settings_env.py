"""Settings come from the environment: production keys are required, URLs are parsed, defaults need no server."""

import pytest

from .support import BASE_DIR, clean_env, manage, production_env, run_python, settings_in

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["SECRET_KEY", "FIELD_ENCRYPTION_KEY"])
@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_it_refuses_to_start_without_a_production_key_when_debug_is_off(name, value):
    env = production_env()
    if value is None:
        del env[name]
    else:
        env[name] = value

    result = run_python("from django.conf import settings; settings.SECRET_KEY", env)

    assert result.returncode != 0
    assert f"ImproperlyConfigured: {name} must be set when DEBUG is off" in result.stderr


def test_manage_py_names_the_missing_variable():
    env = production_env()
    del env["SECRET_KEY"]

    result = manage("check", env=env)

    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_debug_is_off_unless_asked_for():
    env = production_env()
    del env["DEBUG"]

    assert settings_in(env, "DEBUG") == {"DEBUG": False}


def test_it_reads_database_and_redis_urls():
    env = clean_env(
        DEBUG="true",
        DATABASE_URL="postgres://crm:p%40ss@db.example:6543/crm_db",
        REDIS_URL="redis://:hunter2@cache.example:6380/3",
        CONN_MAX_AGE="15",
    )

    seen = settings_in(env, "DATABASES", "CACHES", "CELERY_BROKER_URL", "REDIS_URL")

    db = seen["DATABASES"]["default"]
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["NAME"], db["USER"], db["PASSWORD"], db["HOST"], db["PORT"]) == (
        "crm_db", "crm", "p@ss", "db.example", 6543,
    )
    assert db["CONN_MAX_AGE"] == 15
    assert db["CONN_HEALTH_CHECKS"] is True
    assert db["ATOMIC_REQUESTS"] is False
    cache = seen["CACHES"]["default"]
    assert cache["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert cache["LOCATION"] == "redis://:hunter2@cache.example:6380/3"
    assert seen["CELERY_BROKER_URL"] == seen["REDIS_URL"] == "redis://:hunter2@cache.example:6380/3"


def test_without_urls_it_runs_embedded_under_var_dir(tmp_path):
    env = clean_env(DEBUG="true", VAR_DIR=str(tmp_path))

    seen = settings_in(
        env, "DATABASES", "CACHES", "CELERY_BROKER_URL", "CELERY_BROKER_TRANSPORT_OPTIONS", "ALLOWED_HOSTS",
        "SITE_URL", "FIELD_ENCRYPTION_KEY", "AMOCRM_RATE_LIMIT", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE",
    )

    db = seen["DATABASES"]["default"]
    assert db["ENGINE"] == "django.db.backends.sqlite3"
    assert db["NAME"] == str(tmp_path / "db.sqlite3")
    assert "journal_mode=WAL" in db["OPTIONS"]["init_command"]
    assert db["OPTIONS"]["timeout"] > 0
    assert seen["CACHES"]["default"]["BACKEND"] == "django.core.cache.backends.filebased.FileBasedCache"
    assert seen["CACHES"]["default"]["LOCATION"] == str(tmp_path / "cache")
    assert seen["CELERY_BROKER_URL"].startswith("filesystem://")
    assert seen["CELERY_BROKER_TRANSPORT_OPTIONS"]["data_folder_in"].startswith(str(tmp_path))
    assert "localhost" in seen["ALLOWED_HOSTS"]
    assert seen["SITE_URL"] == "http://localhost:8000"
    assert len(seen["FIELD_ENCRYPTION_KEY"]) == 1
    assert seen["AMOCRM_RATE_LIMIT"] == 7
    assert seen["SECURE_SSL_REDIRECT"] is False
    assert seen["SESSION_COOKIE_SECURE"] is False


def test_an_env_file_fills_in_and_empty_lines_mean_the_default(tmp_path):
    env_file = tmp_path / "app.env"
    env_file.write_text("DEBUG=true\nVAR_DIR=\nDATABASE_URL=\nREDIS_URL=\nAMOCRM_RATE_LIMIT=3\nPHONE_DEFAULT_REGION=KZ\n")
    env = clean_env(ENV_FILE=str(env_file), PHONE_DEFAULT_REGION="DE")

    seen = settings_in(
        env,
        "DEBUG", "VAR_DIR", "DATABASES", "REDIS_URL", "AMOCRM_RATE_LIMIT", "PHONE_DEFAULT_REGION",
    )

    assert seen["DEBUG"] is True
    assert seen["VAR_DIR"] == str(BASE_DIR / "var")
    assert seen["DATABASES"]["default"]["ENGINE"] == "django.db.backends.sqlite3"
    assert seen["REDIS_URL"] == ""
    assert seen["AMOCRM_RATE_LIMIT"] == 3
    assert seen["PHONE_DEFAULT_REGION"] == "DE"  # the real environment wins over the file


def test_production_settings_are_secure():
    seen = settings_in(
        production_env(),
        "DEBUG", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS",
        "CSRF_TRUSTED_ORIGINS", "STORAGES",
    )

    assert seen["DEBUG"] is False
    assert seen["SECURE_SSL_REDIRECT"] is True
    assert seen["SESSION_COOKIE_SECURE"] is True
    assert seen["CSRF_COOKIE_SECURE"] is True
    assert seen["SECURE_HSTS_SECONDS"] >= 31536000
    assert seen["CSRF_TRUSTED_ORIGINS"] == ["https://crm-bridge.example.com"]
    assert "Manifest" in seen["STORAGES"]["staticfiles"]["BACKEND"]


def test_check_deploy_reports_nothing_in_a_production_environment():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_a_dot_env_made_from_the_example_passes_check_deploy(tmp_path):
    """What README's deploy steps produce: .env.example with the keys filled in, run under docker compose."""
    example = (BASE_DIR / ".env.example").read_text()
    filled = example.replace("SECRET_KEY=\n", f"SECRET_KEY={production_env()['SECRET_KEY']}\n").replace(
        "FIELD_ENCRYPTION_KEY=\n", f"FIELD_ENCRYPTION_KEY={production_env()['FIELD_ENCRYPTION_KEY']}\n"
    )
    (tmp_path / ".env").write_text(filled)
    # docker-compose.yml's `environment:` sets these two over the file.
    env = clean_env(
        ENV_FILE=str(tmp_path / ".env"),
        DATABASE_URL="postgres://amocrm:secret@db:5432/amocrm",
        REDIS_URL="redis://redis:6379/0",
    )

    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)

    assert result.returncode == 0, result.stdout + result.stderr


def test_system_checks_flag_dangerous_combinations(tmp_path):
    env = production_env(
        SITE_URL="http://crm-bridge.example.com",
        AMOCRM_TRUSTED_HOSTS="http://127.0.0.1:8765",
        REDIS_URL="",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        FIELD_ENCRYPTION_KEY="not-a-fernet-key",
    )

    result = manage("check", env=env)
    output = result.stdout + result.stderr

    assert result.returncode != 0
    for check_id in ("config.E001", "config.W001", "config.W002", "config.W003", "config.W004"):
        assert check_id in output
