"""Every code sample of honeycomb-beeline's public documentation page
(../shared/reference/honeycomb-beeline-docs.txt), run against this package, with the meaning the
page gives it. The samples are as printed, but for their obvious typos (`{"user_id", user_id}`
sets for dicts, `'x' in 'fields'`, a missing `import struct`) and the lines the page's layout
lost (marked "lost on the page"). The page's `beeline.init(...)` calls are kept: the only change
is where the events go, a recorder in memory instead of api.honeycomb.io (`init` below), or a
loopback receiver where the sample picks its own transmission.
"""

from __future__ import annotations

import hashlib
import math
import struct
import threading

import pytest

import beeline
from beeline.testing import RecordingTransmission
from tests.receiver import LoopbackReceiver


@pytest.fixture
def recorder(monkeypatch):
    """`beeline.init` as the page calls it, recording into memory (or, when the sample chooses
    its own transmission, sending to a loopback receiver that the test passes as api_host)."""
    recording = RecordingTransmission()
    real_init = beeline.init

    def init(*args, **kwargs):
        kwargs.setdefault("transmission_impl", recording)
        return real_init(*args, **kwargs)

    monkeypatch.setattr(beeline, "init", init)
    yield recording
    beeline.close()


# ---- Automatic instrumentation ----------------------------------------------------------------


@pytest.mark.parametrize("middleware", ["HoneyMiddleware", "HoneyMiddlewareHttp"])
def test_django_sample_traces_requests_and_queries(recorder, tmp_path_factory, middleware):
    pytest.importorskip("django")
    from django.apps import AppConfig
    from django.test import Client, override_settings

    from tests.middleware.django_project import setup as project

    project.configure(tmp_path_factory.mktemp("django-db"))

    class MyAppConfig(AppConfig):
        name = "tests.middleware.django_project"  # lost on the page

        def ready(self):
            beeline.init(writekey='YOUR_API_KEY', dataset="my-django-app", service_name="my-app",  # lost
                         debug=True)

    import tests.middleware.django_project as app_module

    MyAppConfig("tests.middleware.django_project", app_module).ready()
    # settings.py: the beeline middleware first in MIDDLEWARE (the page's list is lost)
    with override_settings(MIDDLEWARE=["beeline.middleware.django." + middleware]):
        response = Client().get("/db/")
    assert response.status_code == 200
    root = recorder.find(type="http_server")
    assert root["name"] == "django_http_get" and root["service_name"] == "my-app"
    queries = [e for e in recorder.events if e.get("type") == "db"]
    # HoneyMiddlewareHttp: "if you'd prefer to not use db instrumentation"
    assert bool(queries) is (middleware == "HoneyMiddleware")


def test_flask_sample_traces_requests_and_db_events(recorder, tmp_path):
    flask = pytest.importorskip("flask")
    flask_sqlalchemy = pytest.importorskip("flask_sqlalchemy")
    sa = pytest.importorskip("sqlalchemy")
    from flask import Flask

    import beeline
    from beeline.middleware.flask import HoneyMiddleware

    # see note below if you are using uwsgi/gunicorn pre-fork models (multiple processes)
    beeline.init(writekey='YOUR_API_KEY', dataset="my-flask-app", service_name="my-app-name", debug=True)
    app = Flask(__name__)
    # db_events defaults to True, set to False if not using our db middleware with Flask-SQLAlchemy
    HoneyMiddleware(app, db_events=True)

    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///%s" % (tmp_path / "app.db")
    db = flask_sqlalchemy.SQLAlchemy(app)

    @app.route("/users")
    def users():
        db.session.execute(sa.text("SELECT 1")).all()
        return flask.jsonify([])

    with app.test_client().get("/users") as response:
        assert response.status_code == 200
    root = recorder.find(name="flask_http_get")
    assert root["service_name"] == "my-app-name" and root["request.path"] == "/users"
    query = recorder.find(name="flask_db_query")
    assert query["db.query"] == "SELECT 1" and query["trace.parent_id"] == root["trace.span_id"]


def test_lambda_sample_traces_each_invocation(recorder):
    import beeline

    user_id = "u-42"
    beeline.init(writekey='YOUR_API_KEY', dataset="my-lambda-app", service_name="my-lambda-function", debug=True)
    from beeline.middleware.awslambda import beeline_wrapper

    # wrapper starts a trace that ends when the function exits
    @beeline_wrapper  # lost on the page
    def my_handler(event, context):
        # my code

        # add some context to this event
        beeline.add_context({"user_id": user_id})

    class FakeContext:  # the only fake: AWS's own context object
        function_name = "my-lambda-function"
        function_version = "$LATEST"
        aws_request_id = "req-1"
        memory_limit_in_mb = 128

    my_handler({}, FakeContext())
    (root,) = recorder.events
    assert root["user_id"] == user_id and root["service_name"] == "my-lambda-function"
    assert root["trace.parent_id"] is None


def test_bottle_sample_traces_requests(recorder):
    pytest.importorskip("bottle")
    import bottle
    from werkzeug.test import Client

    import beeline
    from beeline.middleware.bottle import HoneyWSGIMiddleware

    beeline.init(writekey='YOUR_API_KEY', dataset="my-bottle-app", service_name="my-app")  # lost on the page
    app = bottle.Bottle()  # the page's bottle.app() is the global default app: a fresh one here
    app.route("/hello")(lambda: "hi")
    myapp = HoneyWSGIMiddleware(app)

    response = Client(myapp).get("/hello")
    assert response.status_code == 200
    root = recorder.find(type="http_server")
    assert root["request.path"] == "/hello" and root["response.status_code"] == 200


def test_tornado_sample_sends_through_a_tornado_coroutine(monkeypatch):
    pytest.importorskip("tornado")
    import asyncio

    import libhoney
    import tornado.web

    import beeline
    from beeline.patch import tornado as tornado_patch  # noqa: F401  (the page's import)
    from tests.middleware.tornado_support import serving

    class Hello(tornado.web.RequestHandler):
        def get(self):
            self.write("hi")

    with LoopbackReceiver() as receiver:

        async def scenario():
            beeline.init(
                writekey='YOUR_API_KEY', dataset="my-tornado-app", service_name="my-app",
                # use a tornado coroutine rather than a threadpool to send events
                transmission_impl=libhoney.transmission.TornadoTransmission(),
                api_host=receiver.url,  # instead of api.honeycomb.io
            )
            app = tornado.web.Application([("/", Hello)])
            async with serving(app) as url:
                from tornado.httpclient import AsyncHTTPClient

                response = await AsyncHTTPClient(force_instance=True).fetch(url + "/")
                assert response.body == b"hi"
            beeline.get_beeline().client.flush()
            for _ in range(200):  # the coroutine sends on this loop: let it run, within a bound
                if receiver.events:
                    break
                await asyncio.sleep(0.025)

        asyncio.run(asyncio.wait_for(scenario(), 30))
        beeline.close()
        events = receiver.events
    assert [e["data"]["name"] for e in events if e["data"].get("type") == "http_server"]


# ---- Using traces -------------------------------------------------------------------------------


def test_start_and_finish_trace_sample(recorder):
    hostname, user_id = "web-1", "u-1"
    beeline.init(writekey="YOUR_API_KEY", dataset="my-app", service_name="my-app")  # lost on the page

    def main():
        trace = beeline.start_trace(context={
            "name": "my application",
            "hostname": hostname,
            # other initial context
        })
        # application code

        # add some more context
        beeline.add_context({"user_id": user_id})

        # more application code
        beeline.finish_trace(trace)  # lost on the page

        # since our app is shutting down, call close() to flush any remaining
        # events
        beeline.close()

    main()
    (root,) = recorder.events
    assert root["name"] == "my application" and root["hostname"] == hostname and root["user_id"] == user_id
    assert isinstance(root["duration_ms"], float)


def test_start_span_sample(recorder):
    db_host, sql, result_count = "db-1", "SELECT 1", 3
    beeline.init(writekey="YOUR_API_KEY", dataset="my-app", service_name="my-app")

    # trace is started - we have one active span: the root span
    trace = beeline.start_trace()
    # something interesting is coming up: a db query!
    # create a new span
    span = beeline.start_span(context={
        "name": "db query",
        "db_host": db_host,
        "query": sql,
    })
    # add some more context to the current span
    beeline.add_context({"db_result_count": result_count})
    # close this span. This will automatically add a `duration_ms` field describing
    # the length of the span
    beeline.finish_span(span)
    beeline.finish_trace(trace)

    query, root = recorder.events
    assert query["name"] == "db query" and query["db_result_count"] == 3 and query["query"] == sql
    assert isinstance(query["duration_ms"], float)
    assert query["trace.parent_id"] == root["trace.span_id"]


def test_start_span_without_a_trace_creates_no_span(recorder):
    beeline.init(writekey="YOUR_API_KEY", dataset="my-app", service_name="my-app")
    assert beeline.start_span(context={"name": "db query"}) is None
    assert recorder.events == []


def test_context_manager_sample(recorder):
    request_params = {"q": "bees"}

    def external_api_request(params):
        return ["a", "b"], None

    beeline.init(writekey="YOUR_API_KEY", dataset="my-app", service_name="my-app")
    with pytest.raises(Exception, match="something went wrong!"):
        # This will create a span - or if no trace is in progress, will also
        # start a trace
        with beeline.tracer(name="external_api_call"):
            # add some context to this span
            beeline.add_context({"request_params": request_params})
            result, error = external_api_request(request_params)
            # add more context once we have results
            beeline.add_context({"result_count": len(result), "error": error})

            # You can have nested tracer context managers. A new child span will be
            # created
            with beeline.tracer(name="process api results"):
                # if an unhandled exception occurs inside a context manager, the event
                # will still get closed, and the exception type and message
                # will get added to the event
                raise Exception("something went wrong!")

    inner, outer = recorder.events
    assert outer["name"] == "external_api_call" and outer["trace.parent_id"] is None
    assert outer["result_count"] == 2 and outer["request_params"] == request_params
    assert inner["trace.parent_id"] == outer["trace.span_id"]
    assert inner["app.exception_type"] == "<class 'Exception'>"  # str(type(exc)), as the reference wrote it
    assert inner["app.exception_string"] == "something went wrong!"


def test_decorator_sample(recorder):
    request_params, response_time = {"q": "bees"}, 12.5
    beeline.init(writekey="YOUR_API_KEY", dataset="my-app", service_name="my-app")

    @beeline.traced(name="external_api_request")  # lost on the page
    def external_api_request(request_params):
        # adding fields here will add it to the active span wrapping
        # this function
        beeline.add_field("response_time", response_time)
        return [1, 2, 3], None

    # This will create a span - or if no trace is in progress, will also
    # start a trace
    @beeline.traced(name="main")  # lost on the page
    def main():
        beeline.add_context({"request_params": request_params})
        # calling this function will create a new span, under the "main" span
        result, error = external_api_request(request_params)
        # add more context once we have results
        beeline.add_context({"result_count": len(result), "error": error})

    main()
    # Don't forget to close the beeline to ensure all spans get sent
    # before the application ends!
    beeline.close()

    child, root = recorder.events
    assert child["name"] == "external_api_request" and child["response_time"] == response_time
    assert root["name"] == "main" and root["result_count"] == 3 and root["trace.parent_id"] is None
    assert child["trace.parent_id"] == root["trace.span_id"]


# ---- Distributed tracing --------------------------------------------------------------------------


def test_extracting_trace_context_manually(recorder):
    beeline.init(writekey="YOUR_API_KEY", dataset="my-app", service_name="my-app")
    upstream = beeline.trace.marshal_trace_context("trace-1", "span-1", {"tenant": "acme"})

    class Req:
        headers = {"X-Honeycomb-Trace": upstream}

    req = Req()
    # req is my generic incoming request with a dict of headers
    header = req.headers['X-Honeycomb-Trace']

    # trace_id and parent_ids are strings
    # context is a dict of key/value pairs
    # these values will be None if the header is malformed
    trace_id, parent_id, context = beeline.trace.unmarshal_trace_context(header)

    trace = beeline.start_trace(trace_id=trace_id, parent_span_id=parent_id)

    # populate our trace fields using the upstream context object
    # these will be added to the current span as well as all future spans
    for k, v in context.items():
        beeline.add_trace_field(k, v)
    with beeline.tracer("child"):
        pass
    beeline.finish_trace(trace)

    child, root = recorder.events
    assert root["trace.trace_id"] == "trace-1" and root["trace.parent_id"] == "span-1"
    assert root["app.tenant"] == child["app.tenant"] == "acme"


def test_sending_trace_context_with_the_requests_patch(recorder):
    pytest.importorskip("requests")
    from tests.patch.server import HeaderRecordingServer

    beeline.init(writekey="YOUR_API_KEY", dataset="my-app", service_name="my-app")
    from beeline.patch import requests  # noqa: F401  (applies the patch, as the page says)
    import requests  # noqa: F811  (the page imports both, in this order)

    with HeaderRecordingServer() as server, beeline.tracer("outgoing") as span:
        requests.get(server.url + "/endpoint", timeout=5)
        header = server.last().header("X-Honeycomb-Trace")
    trace_id, parent_id, _ = beeline.trace.unmarshal_trace_context(header)
    assert trace_id == span.trace_id and parent_id != span.id  # the requests span is the parent
    assert parent_id == recorder.find(name="requests_GET")["trace.span_id"]


def test_sending_trace_context_manually(recorder):
    pytest.importorskip("requests")
    from tests.patch.server import HeaderRecordingServer

    mydata = b"payload"
    beeline.init(writekey="YOUR_API_KEY", dataset="my-app", service_name="my-app")
    import requests  # noqa: F811  (the page imports both, in this order)

    with HeaderRecordingServer() as server, beeline.tracer("outgoing") as span:
        trace_context = beeline.get_beeline().tracer_impl.marshal_trace_context()
        requests.post(server.url + "/endpoint", data=mydata, headers={'X-Honeycomb-Trace': trace_context},
                      timeout=5)
        header = server.last().header("X-Honeycomb-Trace")
    assert header == trace_context
    assert beeline.trace.unmarshal_trace_context(header)[:2] == (span.trace_id, span.id)


def test_threads_without_context_start_their_own_trace(recorder):
    beeline.init(writekey="YOUR_API_KEY", dataset="my-app", service_name="my-app")
    trace = beeline.start_trace()
    seen = {}

    def thread_func():
        # there's no trace context inside this thread, so the span will not start
        span = beeline.start_span(context={'name': 'thread_func'})
        seen["span"] = span

        # tracer will detect that there is no active trace inside this thread, and
        # start a new one
        with beeline.tracer(name='thread_func'):
            pass

    t = threading.Thread(target=thread_func)
    t.start()
    t.join()
    beeline.finish_trace(trace)

    assert seen["span"] is None
    thread_span, root = recorder.events
    assert thread_span["trace.trace_id"] != root["trace.trace_id"] and thread_span["trace.parent_id"] is None


def test_threads_with_an_explicit_child_trace(recorder):
    beeline.init(writekey="YOUR_API_KEY", dataset="my-app", service_name="my-app")
    trace = beeline.start_trace()

    def thread_func():
        child_trace = beeline.start_trace(
            context={'name': 'thread_func'},
            # trace.id refers to the root span id. You could also do this with
            # a child span returned by `start_span`
            trace_id=trace.trace_id, parent_span_id=trace.id,  # lost on the page
        )
        beeline.finish_trace(child_trace)

    t = threading.Thread(target=thread_func)
    t.start()
    t.join()
    beeline.finish_trace(trace)

    child, root = recorder.events
    assert child["trace.trace_id"] == root["trace.trace_id"]
    assert child["trace.parent_id"] == root["trace.span_id"]


def test_add_context_field_and_trace_field_samples(recorder):
    user_id, src_addr, http_method, http_endpoint = "u-1", "10.0.0.1", "GET", "/users"
    beeline.init(writekey="YOUR_API_KEY", dataset="my-app", service_name="my-app")

    # Start a new trace
    trace = beeline.start_trace(context={
        "name": "my application",
        "src_addr": src_addr,
        "method": http_method,
        # other initial context
    })
    beeline.add_context_field('user_id', user_id)

    # this field will be added to our root span and all child spans going forward
    beeline.add_trace_field("endpoint", http_endpoint)

    # here's our shared function, we'll wrap it with `tracer` to start a new span
    # The span automatically inherits the field "endpoint" from the trace
    # with no extra effort
    with beeline.tracer(name="my_shared_function"):
        pass

    # don't forget to finish our trace!
    beeline.finish_trace(trace)

    shared, root = recorder.events
    assert root["user_id"] == user_id and "user_id" not in shared
    assert root["app.endpoint"] == shared["app.endpoint"] == http_endpoint


def test_isolated_events_carry_no_trace_metadata(recorder):
    beeline.init(writekey="YOUR_API_KEY", dataset="my-app", service_name="my-app")
    client = beeline.get_beeline().client
    event = client.new_event()
    event.add_field("job", "cleanup")  # lost on the page
    event.send()
    (sent,) = recorder.events
    assert sent["job"] == "cleanup"
    assert not any(key.startswith("trace.") for key in sent)


# ---- Sampling and scrubbing --------------------------------------------------------------------------


def test_sample_rate_keeps_one_trace_in_n(recorder):
    beeline.init(writekey="YOUR_API_KEY", dataset="my-app", service_name="my-app", sample_rate=10)
    for _ in range(2000):
        with beeline.tracer("work"):
            pass
    kept = len(recorder.events)
    assert 100 < kept < 320  # one in ten of 2000, well inside its spread
    assert {e.sample_rate for e in recorder.sent} == {10}


MAX_INT32 = math.pow(2, 32) - 1


# Deterministic _should_sample taken from https://github.com/honeycombio/beeline-python/...
def _should_sample(trace_id, sample_rate):
    sample_upper_bound = MAX_INT32 / sample_rate
    sha1 = hashlib.sha1()
    # convert last 4 digits to int
    value, = struct.unpack('<I', sha1.digest()[-4:])
    return value < sample_upper_bound


def sampler(fields):
    # our default sample rate, sample one in every 10 events
    sample_rate = 10

    response_code = fields.get('response.status_code')
    # False indicates that we should not keep this event
    if response_code == 302:
        return False, 0
    elif response_code == 200:
        # heavily sample healthy requests
        sample_rate = 100
    elif response_code >= 500:
        # sample every error request
        sample_rate = 1

    # The truthiness of the first return argument determines whether we keep the
    # event. The second argument, the sample rate, tells Honeycomb what rate the
    # event was sampled at (important to correctly weight calculations on the data).
    trace_id = fields.get('trace.trace_id')
    if _should_sample(trace_id, sample_rate):
        return True, sample_rate
    return False, 0


def test_sampler_hook_sample(recorder):
    import beeline
    beeline.init(writekey='mywritekey', dataset='myapp', debug=True, sampler_hook=sampler)

    for status in (302, 500, 200, 404):
        with beeline.tracer("request"):
            beeline.add_context_field("response.status_code", status)

    kept = {e.fields()["response.status_code"]: e.sample_rate for e in recorder.sent}
    assert 302 not in kept  # the page's way to drop: return False, 0
    assert kept[500] == 1
    # The page's hash ignores the trace id, so each rate's decision is one fixed answer.
    for status, rate in ((200, 100), (404, 10)):
        assert (status in kept) is _should_sample(None, rate)
        if status in kept:
            assert kept[status] == rate


def test_presend_hook_sample(recorder):
    def scrub_msg(message):
        return message.replace("4111-1111", "XXXX")

    def presend(fields):
        # We don't want to log customer IPs that get captured in the beeline
        if 'request.remote_addr' in fields:
            del fields['request.remote_addr']

        # this field is useful, but sometimes contains sensitive data.
        # Run a scrubber method against it before sending
        if 'transaction_log_msg' in fields:
            fields['transaction_log_msg'] = scrub_msg(fields['transaction_log_msg'])

    import beeline
    beeline.init(writekey='mywritekey', dataset='myapp', debug=True, presend_hook=presend)
    with beeline.tracer("request"):
        beeline.add_context({"request.remote_addr": "10.1.2.3", "transaction_log_msg": "card 4111-1111"})
    (event,) = recorder.events
    assert "request.remote_addr" not in event
    assert event["transaction_log_msg"] == "card XXXX"
