"""PropagationContext, the Request interface and DictRequest."""

from __future__ import annotations

import subprocess
import sys

import pytest

import beeline.propagation as propagation
from beeline.propagation import DictRequest, PropagationContext, Request


class TestPropagationContext:
    def test_attributes_as_given(self) -> None:
        fields = {"app.user": "bob"}
        ctx = PropagationContext("t1", "p1", fields, "ds")
        assert (ctx.trace_id, ctx.parent_id, ctx.trace_fields, ctx.dataset) == (
            "t1",
            "p1",
            fields,
            "ds",
        )
        assert ctx.trace_fields is fields

    def test_each_context_gets_its_own_fields_dict(self) -> None:
        first = PropagationContext("t1", "p1")
        second = PropagationContext("t2", "p2")
        first.trace_fields["app.leak"] = True
        assert second.trace_fields == {}
        assert first.dataset is None

    def test_equality_compares_all_four_attributes(self) -> None:
        base = PropagationContext("t", "p", {"a": 1}, "ds")
        assert base == PropagationContext("t", "p", {"a": 1}, "ds")
        assert base != PropagationContext("t", "p", {"a": 2}, "ds")
        assert base != PropagationContext("t", "p", {"a": 1}, None)
        assert base != PropagationContext("t", "x", {"a": 1}, "ds")
        assert base != PropagationContext("x", "p", {"a": 1}, "ds")
        assert base != ("t", "p", {"a": 1}, "ds")

    def test_repr_names_every_attribute(self) -> None:
        text = repr(PropagationContext("abc", "def", {"k": "v"}, "my-ds"))
        for part in ("abc", "def", "'k': 'v'", "my-ds", "PropagationContext("):
            assert part in text

    def test_slots_and_not_hashable(self) -> None:
        ctx = PropagationContext("t", "p")
        with pytest.raises(AttributeError):
            ctx.something_else = 1  # type: ignore[attr-defined]
        with pytest.raises(TypeError):
            hash(ctx)


def test_propagate_dataset_is_a_plain_true_bool() -> None:
    # init() may have set it for this process already, so look at a fresh interpreter too.
    assert isinstance(propagation.propagate_dataset, bool)
    fresh = subprocess.run(
        [sys.executable, "-c", "import beeline.propagation as p; print(repr(p.propagate_dataset))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert fresh.stdout.strip() == "True"


class TestRequestInterface:
    def test_cannot_instantiate_the_abstract_base(self) -> None:
        with pytest.raises(TypeError):
            Request()  # type: ignore[abstract]

    def test_subclass_missing_a_method_cannot_be_instantiated(self) -> None:
        class Partial(Request):
            def header(self, key):
                return None

            def method(self):
                return "GET"

            def scheme(self):
                return "http"

            def host(self):
                return "h"

            def path(self):
                return "/"

            def query(self):
                return ""

        with pytest.raises(TypeError, match="middleware_request"):
            Partial()  # type: ignore[abstract]


class TestDictRequest:
    @pytest.mark.parametrize(
        "asked", ["X-Honeycomb-Trace", "x-honeycomb-trace", "X-HONEYCOMB-TRACE", "x-HoNeYcOmB-tRaCe"]
    )
    def test_header_lookup_ignores_case(self, asked: str) -> None:
        request = DictRequest({"x-Honeycomb-TRACE": "value"})
        assert request.header(asked) == "value"

    def test_missing_header_is_none(self) -> None:
        assert DictRequest({"a": "1"}).header("traceparent") is None
        assert DictRequest(None).header("traceparent") is None

    def test_pairs_and_iterators_are_accepted(self) -> None:
        pairs = [("TraceParent", "one"), ("Other", "two")]
        assert DictRequest(pairs).header("traceparent") == "one"
        request = DictRequest(iter(pairs))
        assert request.header("other") == "two"
        assert request.header("TRACEPARENT") == "one"
        assert list(request.middleware_request()["headers"]) == pairs

    def test_first_of_two_case_variants_wins(self) -> None:
        request = DictRequest([("tracestate", "first"), ("TraceState", "second")])
        assert request.header("tracestate") == "first"

    def test_props_are_read_and_missing_ones_are_none(self) -> None:
        props = {
            "method": "POST",
            "scheme": "https",
            "host": "example.test",
            "path": "/a/b",
            "query": "x=1",
        }
        request = DictRequest({}, props)
        assert (
            request.method(),
            request.scheme(),
            request.host(),
            request.path(),
            request.query(),
        ) == ("POST", "https", "example.test", "/a/b", "x=1")
        empty = DictRequest({})
        assert [empty.method(), empty.scheme(), empty.host(), empty.path(), empty.query()] == [None] * 5

    def test_middleware_request_holds_the_headers_and_props_as_given(self) -> None:
        # What honeycomb-beeline 3.6.0 returned: custom parser hooks read ["headers"] and ["props"].
        headers, props = {"A": "1"}, {"method": "GET"}
        given = DictRequest(headers, props).middleware_request()
        assert given == {"headers": headers, "props": props}
        assert given["headers"] is headers and given["props"] is props
        assert DictRequest({"B": "2"}).middleware_request() == {"headers": {"B": "2"}, "props": {}}

    def test_is_a_request(self) -> None:
        assert isinstance(DictRequest({}), Request)
