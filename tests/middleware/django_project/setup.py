"""Configure Django for the tests, once per process, with SQLite files in a temporary folder."""

from __future__ import annotations

from pathlib import Path

HONEY = "beeline.middleware.django.HoneyMiddleware"
HONEY_HTTP = "beeline.middleware.django.HoneyMiddlewareHttp"
HONEY_POST = "beeline.middleware.django.HoneyMiddlewareWithPOST"
COMMON = "django.middleware.common.CommonMiddleware"

# "other" is a second database alias, to show that queries on every connection are traced.
OTHER_TABLE_SQL = "CREATE TABLE IF NOT EXISTS other_items (id INTEGER PRIMARY KEY, label TEXT)"


def settings_for(db_dir: Path) -> dict:
    return {
        "DEBUG": False,
        "SECRET_KEY": "beeline-tests-only",
        "ROOT_URLCONF": "tests.middleware.django_project.urls",
        "ALLOWED_HOSTS": ["testserver", "127.0.0.1", "localhost"],
        "INSTALLED_APPS": ["tests.middleware.django_project"],
        "MIDDLEWARE": [HONEY, COMMON],
        "DATABASES": {
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(db_dir / "default.sqlite3"),
                "OPTIONS": {"timeout": 20},
            },
            "other": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(db_dir / "other.sqlite3"),
                "OPTIONS": {"timeout": 20},
            },
        },
        "USE_TZ": True,
        "DEFAULT_AUTO_FIELD": "django.db.models.AutoField",
    }


def configure(db_dir: Path) -> None:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(**settings_for(db_dir))
    django.setup()
    from django.db import connections

    from tests.middleware.django_project.models import Note

    default = connections["default"]
    if Note._meta.db_table not in default.introspection.table_names():
        with default.schema_editor() as editor:
            editor.create_model(Note)
    with connections["other"].cursor() as cursor:
        cursor.execute(OTHER_TABLE_SQL)
    connections.close_all()
