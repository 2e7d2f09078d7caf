"""The backend service: a one-file Django app with a SQLite database.

    python backend.py PORT DB_PATH
"""

import sys

import django
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.urls import path

import beeline


def orders(request, customer):
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, item FROM orders WHERE customer = %s ORDER BY id", [customer])
        rows = cursor.fetchall()
    with beeline.tracer("price_orders"):
        priced = [{"id": row[0], "item": row[1], "price": 10 + row[0]} for row in rows]
    return JsonResponse({"orders": priced})


urlpatterns = [path("orders/<str:customer>", orders)]


def configure(db_path):
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        ROOT_URLCONF=__name__,
        SECRET_KEY="example-only",
        MIDDLEWARE=["beeline.middleware.django.HoneyMiddleware"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": db_path}},
        INSTALLED_APPS=[],
    )
    django.setup()
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, customer TEXT, item TEXT)")
        cursor.execute("DELETE FROM orders")
        cursor.executemany(
            "INSERT INTO orders (customer, item) VALUES (%s, %s)",
            [("ada", "keyboard"), ("ada", "lamp"), ("bob", "chair")],
        )


def main():
    port, db_path = int(sys.argv[1]), sys.argv[2]
    beeline.init(service_name="backend")
    configure(db_path)
    from django.core.wsgi import get_wsgi_application
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", port, get_wsgi_application(), threaded=True)
    print(f"backend listening on 127.0.0.1:{port}", flush=True)
    try:
        server.serve_forever()
    finally:
        beeline.close()


if __name__ == "__main__":
    main()
