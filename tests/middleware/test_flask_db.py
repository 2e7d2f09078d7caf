"""Flask DB spans: Flask-SQLAlchemy (and plain SQLAlchemy) on a real SQLite database."""

from __future__ import annotations

import datetime
import gc
import threading

import pytest
import requests

flask = pytest.importorskip("flask")
flask_sqlalchemy = pytest.importorskip("flask_sqlalchemy")
sa = pytest.importorskip("sqlalchemy")

import beeline  # noqa: E402
from beeline.middleware import flask as flask_mw  # noqa: E402
from beeline.middleware.flask import HoneyDBMiddleware, HoneyMiddleware  # noqa: E402
from beeline.middleware.sqlalchemy import (  # noqa: E402
    instrument_engine,
    is_instrumented,
    query_args,
    uninstrument_engine,
)


def make_app(tmp_path, **config) -> tuple:
    """A Flask app with Flask-SQLAlchemy on a SQLite file (so threads get their own
    connections), a `users` table and a few views that query it."""
    app = flask.Flask("flask_db_under_test")
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///%s" % (tmp_path / "app.db")
    app.config.update(config)
    db = flask_sqlalchemy.SQLAlchemy()

    class User(db.Model):
        __tablename__ = "users"
        id = db.Column(db.Integer, primary_key=True)
        name = db.Column(db.String(50), nullable=False)

    @app.route("/users", methods=["POST"])
    def create_user():
        user = User(name=flask.request.args["name"])
        db.session.add(user)
        db.session.commit()
        return {"id": user.id}, 201

    @app.route("/users/<name>")
    def find_user(name):
        with beeline.tracer("lookup"):
            row = db.session.execute(sa.select(User).where(User.name == name)).scalar_one_or_none()
        return {"found": row is not None}

    @app.route("/bad-sql")
    def bad_sql():
        db.session.execute(sa.text("SELECT * FROM no_such_table"))
        return "unreachable"

    return app, db, User


def create_tables(app, db) -> None:
    with app.app_context():
        db.create_all()


def db_spans(recorder) -> list:
    return recorder.spans(name="flask_db_query")


def test_query_args_follow_the_reference():
    when = datetime.datetime(2024, 5, 1, 12, 30)
    assert query_args((1, "a", when, datetime.date(2024, 5, 2))) == [1, "a", "2024-05-01T12:30:00", "2024-05-02"]
    assert query_args({"name": "bob", "ids": [1, 2]}) == ["name=bob", "ids=[1, 2]"]
    assert query_args(None) is None


class TestQuerySpans:
    def test_each_statement_is_a_span_with_the_reference_fields(self, beeline_recorder, servers, ref, tmp_path):
        app, db, _ = make_app(tmp_path)
        HoneyMiddleware(app)  # before Flask-SQLAlchemy is set up, as many apps do it
        db.init_app(app)
        create_tables(app, db)
        url = servers.werkzeug(app)

        assert requests.post(url + "/users?name=bob", timeout=ref.HTTP_TIMEOUT).json() == {"id": 1}
        post_root = ref.finished(beeline_recorder, name="flask_http_post")[0]
        insert = [s for s in db_spans(beeline_recorder) if s["db.query"].startswith("INSERT")]
        assert len(insert) == 1
        ref.assert_fields(insert[0], ref.DB_FIELDS)
        ref.assert_fields(insert[0], ref.SPAN_FIELDS)
        assert insert[0]["type"] == "db"
        assert insert[0]["db.query_args"] == ["bob"]
        assert insert[0]["db.last_insert_id"] == 1
        assert insert[0]["db.rows_affected"] == 1
        assert insert[0]["trace.parent_id"] == post_root["trace.span_id"]
        assert insert[0]["db.call_count"] == 1.0
        assert insert[0]["db.total_duration"] == insert[0]["db.duration"]

        beeline_recorder.clear()
        assert requests.get(url + "/users/bob", timeout=ref.HTTP_TIMEOUT).json() == {"found": True}
        root = ref.finished(beeline_recorder, name="flask_http_get")[0]
        lookup = beeline_recorder.find(name="lookup")
        select = db_spans(beeline_recorder)
        assert len(select) == 1 and select[0]["db.query"].startswith("SELECT")
        assert select[0]["trace.parent_id"] == lookup["trace.span_id"]  # the active span is the parent
        assert root["rollup.db.call_count"] == 1.0
        assert root["rollup.db.total_duration"] == pytest.approx(select[0]["db.duration"])

    def test_rollups_sum_every_query_of_the_request(self, beeline_recorder, tmp_path):
        app, db, User = make_app(tmp_path)
        db.init_app(app)
        HoneyMiddleware(app)
        create_tables(app, db)

        @app.route("/many")
        def many():
            for i in range(4):
                db.session.execute(sa.select(User).where(User.id == i)).all()
            return "ok"

        with app.test_client().get("/many") as response:
            assert response.status_code == 200
        spans = db_spans(beeline_recorder)
        root = beeline_recorder.find(name="flask_http_get")
        assert len(spans) == 4
        assert root["rollup.db.call_count"] == 4.0
        assert root["rollup.db.total_duration"] == pytest.approx(sum(s["db.duration"] for s in spans))

    def test_failing_statement_has_db_error(self, beeline_recorder, tmp_path):
        app, db, _ = make_app(tmp_path)
        db.init_app(app)
        HoneyMiddleware(app)
        create_tables(app, db)
        with app.test_client().get("/bad-sql") as response:
            assert response.status_code == 500
        span = db_spans(beeline_recorder)
        assert len(span) == 1
        assert "no such table: no_such_table" in span[0]["db.error"]
        assert isinstance(span[0]["db.duration"], float)
        root = beeline_recorder.find(name="flask_http_get")
        assert root["rollup.db.call_count"] == 1.0
        assert "no such table" in root["request.error_detail"]

    def test_named_parameters_are_written_as_name_value(self, beeline_recorder, tmp_path):
        app, db, User = make_app(tmp_path, SQLALCHEMY_ENGINE_OPTIONS={"paramstyle": "named"})
        db.init_app(app)
        HoneyMiddleware(app)
        create_tables(app, db)
        when = datetime.datetime(2023, 1, 2, 3, 4, 5)

        @app.route("/named")
        def named():
            db.session.execute(sa.text("SELECT :who AS who, :at AS at"), {"who": "ann", "at": when}).all()
            return "ok"

        with app.test_client().get("/named"):
            pass
        assert db_spans(beeline_recorder)[0]["db.query_args"] == ["who=ann", "at=2023-01-02 03:04:05"]

    def test_every_bind_is_traced(self, beeline_recorder, tmp_path):
        app, db, _ = make_app(tmp_path, SQLALCHEMY_BINDS={"audit": "sqlite:///%s" % (tmp_path / "audit.db")})
        db.init_app(app)
        HoneyMiddleware(app)

        @app.route("/both")
        def both():
            db.session.execute(sa.text("SELECT 1")).all()
            with db.engines["audit"].connect() as conn:
                conn.execute(sa.text("SELECT 2")).all()
            return "ok"

        with app.test_client().get("/both"):
            pass
        assert sorted(s["db.query"] for s in db_spans(beeline_recorder)) == ["SELECT 1", "SELECT 2"]

    def test_no_spans_outside_a_trace_and_none_when_disabled(self, beeline_recorder, tmp_path):
        app, db, User = make_app(tmp_path)
        db.init_app(app)
        HoneyMiddleware(app, db_events=False)
        create_tables(app, db)
        with app.test_client().get("/users/x"):
            pass
        with app.app_context():
            db.session.execute(sa.select(User)).all()
        assert db_spans(beeline_recorder) == []
        assert beeline_recorder.find(name="flask_http_get")["response.status_code"] == 200


    def test_statements_in_a_trace_outside_any_request(self, beeline_recorder, tmp_path):
        app, db, _ = make_app(tmp_path)
        db.init_app(app)
        HoneyMiddleware(app)
        with app.app_context():
            db.create_all()  # no trace: no spans
            engine = db.engine
        assert db_spans(beeline_recorder) == []
        with beeline.tracer("nightly_job") as job, engine.connect() as conn:  # e.g. a CLI command
            conn.execute(sa.text("SELECT count(*) FROM users")).scalar()
        span = beeline_recorder.find(name="flask_db_query")
        assert span["trace.parent_id"] == job.id
        assert beeline_recorder.find(name="nightly_job")["rollup.db.call_count"] == 1.0


class TestReferenceSubclassing:
    """HoneyDBMiddleware as honeycomb-beeline users extend it: init_app later, listeners overridden."""

    def test_init_app_after_construction(self, beeline_recorder, tmp_path):
        app, db, User = make_app(tmp_path)
        db.init_app(app)
        create_tables(app, db)
        app.wsgi_app = flask_mw.HoneyWSGIMiddleware(app.wsgi_app)
        middleware = HoneyDBMiddleware()
        middleware.init_app(app)
        with app.test_client().get("/users/ann") as response:
            assert response.status_code == 200
        assert middleware.app is app
        assert len(db_spans(beeline_recorder)) == 1

    def test_overridden_listeners_are_the_ones_attached(self, beeline_recorder, tmp_path):
        seen = []

        class Annotating(HoneyDBMiddleware):
            def before_cursor_execute(self, conn, cursor, statement, parameters, context, executemany):
                super().before_cursor_execute(conn, cursor, statement, parameters, context, executemany)
                beeline.add_context_field("app.statement_kind", statement.split()[0])

            def after_cursor_execute(self, conn, cursor, statement, parameters, context, executemany):
                seen.append("after")
                super().after_cursor_execute(conn, cursor, statement, parameters, context, executemany)

            def handle_error(self, context):
                seen.append("error")
                super().handle_error(context)

        app, db, _ = make_app(tmp_path)
        db.init_app(app)
        create_tables(app, db)
        HoneyMiddleware(app, db_events=False)
        Annotating(app)
        client = app.test_client()
        with client.get("/users/ann") as response:
            assert response.status_code == 200
        with client.get("/bad-sql") as response:
            assert response.status_code == 500
        ok, failed = db_spans(beeline_recorder)
        assert ok["app.statement_kind"] == "SELECT" and "db.duration" in ok
        assert failed["db.error"] and failed["app.statement_kind"] == "SELECT"
        assert seen == ["after", "error"]


class TestListeners:
    def test_only_the_apps_engines_and_only_once(self, beeline_recorder, tmp_path):
        app, db, _ = make_app(tmp_path)
        db.init_app(app)
        other = sa.create_engine("sqlite:///%s" % (tmp_path / "other.db"))

        @app.route("/other")
        def use_other():
            with other.connect() as conn:
                conn.execute(sa.text("SELECT 'other engine'")).all()
            db.session.execute(sa.text("SELECT 'app engine'")).all()
            return "ok"

        HoneyMiddleware(app)
        HoneyMiddleware(app)
        HoneyDBMiddleware(app)
        with app.test_client().get("/other"):
            pass
        assert [s["db.query"] for s in db_spans(beeline_recorder)] == ["SELECT 'app engine'"]
        with app.app_context():
            assert is_instrumented(db.engine)
        assert not is_instrumented(other)

    def test_concurrent_query_timings_stay_apart(self, beeline_recorder, servers, ref, tmp_path):
        """Reference bug #162: the start time lived on a shared object, so a query that overlapped
        another one was timed from the other's start."""
        app, db, _ = make_app(tmp_path)
        db.init_app(app)
        HoneyMiddleware(app)
        slow_started, quick_done = threading.Event(), threading.Event()

        def hold_until_quick_is_done() -> int:
            slow_started.set()
            return 1 if quick_done.wait(ref.HTTP_TIMEOUT) else 0

        with app.app_context():
            @sa.event.listens_for(db.engine, "connect")
            def add_function(dbapi_connection, record):
                dbapi_connection.create_function("hold", 0, hold_until_quick_is_done)

            db.engine.dispose()

        @app.route("/slow")
        def slow():
            return str(db.session.execute(sa.text("SELECT hold()")).scalar())

        @app.route("/quick")
        def quick():
            with beeline.tracer("before_query"):
                threading.Event().wait(0.2)  # the quick request's own time, before its query
            return str(db.session.execute(sa.text("SELECT 2")).scalar())

        url = servers.werkzeug(app, threaded=True)
        slow_result: list = []
        slow_thread = threading.Thread(
            target=lambda: slow_result.append(requests.get(url + "/slow", timeout=ref.HTTP_TIMEOUT).text))
        slow_thread.start()
        try:
            assert slow_started.wait(ref.HTTP_TIMEOUT)
            assert requests.get(url + "/quick", timeout=ref.HTTP_TIMEOUT).text == "2"
            quick_root = ref.finished(beeline_recorder, name="flask_http_get", request__path="/quick")[0]
        finally:
            quick_done.set()
            slow_thread.join(timeout=30)
        assert slow_result == ["1"]
        ref.finished(beeline_recorder, 2, name="flask_http_get")

        slow_span = beeline_recorder.find(name="flask_db_query", **{"db.query": "SELECT hold()"})
        quick_span = beeline_recorder.find(name="flask_db_query", **{"db.query": "SELECT 2"})
        # The slow query was running during the whole quick request, so it lasted longer.
        assert slow_span["db.duration"] >= quick_root["duration_ms"]
        slow_root = beeline_recorder.find(name="flask_http_get", request__path="/slow")
        assert slow_span["trace.trace_id"] == slow_root["trace.trace_id"]
        assert quick_span["trace.trace_id"] == quick_root["trace.trace_id"]
        assert slow_root["rollup.db.call_count"] == quick_root["rollup.db.call_count"] == 1.0

    def test_flask_sqlalchemy_set_up_after_the_first_request_of_the_middleware(self, beeline_recorder, tmp_path):
        app, db, User = make_app(tmp_path)
        HoneyMiddleware(app)
        db.init_app(app)  # engines exist only now: attached when the first request runs
        create_tables(app, db)
        with app.test_client().get("/users/x") as response:
            assert response.json == {"found": False}
        assert len(db_spans(beeline_recorder)) == 1

    def test_explicit_engines(self, beeline_recorder, tmp_path):
        engine = sa.create_engine("sqlite:///%s" % (tmp_path / "plain.db"))
        app = flask.Flask("plain")

        @app.route("/")
        def index():
            with engine.connect() as conn:
                return str(conn.execute(sa.text("SELECT 40 + 2")).scalar())

        HoneyMiddleware(app, engines=[engine])
        assert is_instrumented(engine)  # attached at once: nothing to wait for
        with app.test_client().get("/") as response:
            assert response.text == "42"
        assert db_spans(beeline_recorder)[0]["db.query"] == "SELECT 40 + 2"
        flask_mw.unpatch(app)
        assert not is_instrumented(engine)

    def test_without_flask_sqlalchemy_every_engine_inside_the_apps_context(self, beeline_recorder, tmp_path):
        engine = sa.create_engine("sqlite:///%s" % (tmp_path / "plain.db"))
        app, other_app = flask.Flask("plain"), flask.Flask("not_instrumented")

        @app.route("/")
        def index():
            with engine.connect() as conn:
                return str(conn.execute(sa.text("SELECT 7")).scalar())

        HoneyMiddleware(app)
        try:
            with app.test_client().get("/") as response:
                assert response.text == "7"
            assert is_instrumented(sa.engine.Engine)
            assert [s["db.query"] for s in db_spans(beeline_recorder)] == ["SELECT 7"]
            with beeline.tracer("outside_flask"):  # a trace, but no app context: as the reference
                with engine.connect() as conn:
                    conn.execute(sa.text("SELECT 8")).all()
                with other_app.app_context(), engine.connect() as conn:  # another app's context
                    conn.execute(sa.text("SELECT 9")).all()
            assert [s["db.query"] for s in db_spans(beeline_recorder)] == ["SELECT 7"]
        finally:
            flask_mw.unpatch(app)
        with app.test_client().get("/") as response:
            assert response.text == "7"
        assert [s["db.query"] for s in db_spans(beeline_recorder)] == ["SELECT 7"]  # nothing new

    def test_listeners_go_with_the_app_that_wanted_them(self, beeline_recorder, tmp_path):
        engine = sa.create_engine("sqlite:///%s" % (tmp_path / "plain.db"))
        app = flask.Flask("short_lived")
        HoneyMiddleware(app, engines=[engine])
        assert is_instrumented(engine)
        del app
        gc.collect()
        assert not is_instrumented(engine)

    def test_unpatch_removes_the_listeners(self, beeline_recorder, tmp_path):
        app, db, _ = make_app(tmp_path)
        db.init_app(app)
        HoneyMiddleware(app)
        with app.test_client().get("/users/x"):
            pass
        with app.app_context():
            engine = db.engine
        assert is_instrumented(engine)
        flask_mw.unpatch(app)
        assert not is_instrumented(engine)
        tracer = flask_mw._query_tracer()
        for name, fn in tracer.listeners():
            assert not sa.event.contains(engine, name, fn)


class TestInstrumentEngine:
    def test_owners_share_the_listeners(self, beeline_recorder, tmp_path):
        engine = sa.create_engine("sqlite:///%s" % (tmp_path / "shared.db"))
        first, second = object(), object()
        assert instrument_engine(engine, owner=first) is True
        assert instrument_engine(engine, owner=second) is False  # already there: not twice
        with beeline.tracer("job"), engine.connect() as conn:
            conn.execute(sa.text("SELECT 1")).all()
        assert len(beeline_recorder.spans(name="sqlalchemy_query")) == 1
        assert uninstrument_engine(engine, owner=first) is False  # the second owner still wants them
        assert uninstrument_engine(engine, owner=second) is True
        with beeline.tracer("job"), engine.connect() as conn:
            conn.execute(sa.text("SELECT 1")).all()
        assert len(beeline_recorder.spans(name="sqlalchemy_query")) == 1
