"""Views for the middleware tests. Each one exercises one thing a user would notice in a trace."""

from __future__ import annotations

import asyncio
import io
import threading

from django.db import DatabaseError, connections
from django.http import FileResponse, Http404, HttpResponse, JsonResponse, StreamingHttpResponse

import beeline
from tests.middleware.django_project.models import Note

# How often some views ran: proves a request is never executed twice.
CALLS = {"attribute_error": 0, "boom": 0}


@beeline.traced("shout")
def shout() -> str:
    beeline.add_context_field("app.volume", 11)
    return "HELLO"


def hello(request):
    with beeline.tracer("greeting"):
        beeline.add_context_field("app.greeting", "hello")
        text = shout()
    return HttpResponse(text)


def user_detail(request, name):
    return HttpResponse(name)


def item_detail(request, pk):
    return HttpResponse(str(pk))


def echo(request):
    """Reads the raw body, which fails if something consumed the stream before the view."""
    try:
        body = request.body
    except Exception as exc:
        return JsonResponse({"body_error": type(exc).__name__})
    return JsonResponse({"body_length": len(body), "query": request.GET.dict()})


def boom(request):
    CALLS["boom"] += 1
    raise ValueError("kaboom")


def attribute_error(request):
    CALLS["attribute_error"] += 1
    raise AttributeError("no such thing")


def missing(request):
    raise Http404("no note 42")


def db_view(request):
    Note.objects.create(text="from-db-view")
    count = Note.objects.filter(text="from-db-view").count()
    with connections["other"].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM other_items WHERE label = %s", ["x"])
        cursor.fetchone()
    failed = ""
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT * FROM no_such_table")
    except DatabaseError as exc:
        failed = str(exc)
    return JsonResponse({"count": count, "failed": failed})


@beeline.untraced
def _count_untraced():
    return Note.objects.count()


def untraced_query(request):
    # Work detached from the request's trace on purpose: its query must not join the trace.
    untraced = _count_untraced()
    traced = Note.objects.count()
    return HttpResponse("%d %d" % (untraced, traced))


def stream(request):
    def body():
        yield b"first,"
        with beeline.tracer("chunk_work"):
            count = Note.objects.count()
        yield b"%d," % count
        yield b"last"

    return StreamingHttpResponse(body())


def stream_fail(request):
    def body():
        yield b"partial"
        raise RuntimeError("stream broke")

    return StreamingHttpResponse(body())


async def astream(request):
    async def body():
        yield b"a,"
        with beeline.tracer("achunk_work"):
            count = await Note.objects.acount()
        yield b"%d" % count

    return StreamingHttpResponse(body())


# How many chunks the slow stream produced, per request tag: shows where a disconnect cut it.
SLOW_CHUNKS: dict = {}


async def slow_astream(request):
    tag = request.GET.get("tag", "")

    async def body():
        for i in range(100):  # at most about two seconds
            SLOW_CHUNKS[tag] = i + 1
            yield b"chunk %d\n" % i
            await asyncio.sleep(0.02)

    return StreamingHttpResponse(body())


def file_view(request):
    return FileResponse(io.BytesIO(b"x" * 10000), content_type="application/octet-stream")


async def async_hello(request):
    with beeline.tracer("async_work"):
        await asyncio.sleep(0)
        count = await Note.objects.acount()
    return HttpResponse("async %d" % count)


async def async_boom(request):
    raise ValueError("async kaboom")


def leaky(request):
    # A span the view forgets to finish: it must not become the parent of the next request.
    beeline.start_span({"name": "left_open"})
    return HttpResponse("leaky")


# ---- concurrency: every request of a group waits until all of them are inside the view ------

_barriers: dict = {}
_barriers_lock = threading.Lock()
_gates: dict = {}


def _group(request):
    return request.GET["tag"], request.GET["group"], int(request.GET["n"])


def concurrent(request):
    tag, group, parties = _group(request)
    with _barriers_lock:
        barrier = _barriers.setdefault(group, threading.Barrier(parties, timeout=10))
    beeline.add_trace_field("tag", tag)
    with beeline.tracer("concurrent_work"):
        beeline.add_context_field("app.tag_seen", tag)
        barrier.wait()
        Note.objects.filter(text=tag).count()
    return HttpResponse(tag)


async def aconcurrent(request):
    tag, group, parties = _group(request)
    gate = _gates.setdefault(group, {"arrived": 0, "event": asyncio.Event()})
    beeline.add_trace_field("tag", tag)
    with beeline.tracer("aconcurrent_work"):
        beeline.add_context_field("app.tag_seen", tag)
        gate["arrived"] += 1
        if gate["arrived"] >= parties:
            gate["event"].set()
        await asyncio.wait_for(gate["event"].wait(), 10)
        await Note.objects.filter(text=tag).acount()
    return HttpResponse(tag)
