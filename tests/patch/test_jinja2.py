"""jinja2: template rendering spans, from files and from strings, sync, streamed and async."""

from __future__ import annotations

import asyncio

import jinja2
import pytest

import beeline
import beeline.patch.jinja2 as jinja2_patch


@pytest.fixture
def env(tmp_path):
    (tmp_path / "page.html").write_text("<h1>{{ title }}</h1>{% for i in items %}<p>{{ i }}</p>{% endfor %}")
    (tmp_path / "broken.html").write_text("{{ 1 // zero }}")
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(tmp_path)))


@pytest.fixture
def async_env(tmp_path):
    (tmp_path / "page.html").write_text("<h1>{{ title }}</h1>")
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(tmp_path)), enable_async=True)


def template_spans(recorder):
    return recorder.spans(name="jinja2_render_template")


class TestRender:
    def test_template_from_a_file(self, beeline_recorder, env):
        with beeline.tracer("request") as root:
            html = env.get_template("page.html").render(title="Hi", items=[1, 2])
        assert html == "<h1>Hi</h1><p>1</p><p>2</p>"
        span = beeline_recorder.find(name="jinja2_render_template")
        assert span["template.name"] == "page.html"
        assert span["template.render_method"] == "render"
        assert span["trace.parent_id"] == root.id
        assert span["duration_ms"] >= 0

    def test_template_from_a_string(self, beeline_recorder):
        with beeline.tracer("request"):
            assert jinja2.Template("{{ a }}!").render(a="x") == "x!"
            assert jinja2.Environment().from_string("{{ b }}").render({"b": "y"}) == "y"
        assert [s["template.name"] for s in template_spans(beeline_recorder)] == ["[string]", "[string]"]

    def test_spans_made_while_rendering_are_children(self, beeline_recorder):
        def lookup():
            with beeline.tracer("lookup"):
                return "value"

        with beeline.tracer("request"):
            jinja2.Template("{{ lookup() }}").render(lookup=lookup)
        template = beeline_recorder.find(name="jinja2_render_template")
        assert beeline_recorder.find(name="lookup")["trace.parent_id"] == template["trace.span_id"]

    def test_an_error_is_recorded_and_raised(self, beeline_recorder, env):
        with beeline.tracer("request"):
            with pytest.raises(ZeroDivisionError):
                env.get_template("broken.html").render(zero=0)
        span = beeline_recorder.find(name="jinja2_render_template")
        assert span["app.exception_type"] == "<class 'ZeroDivisionError'>"
        assert "division" in span["app.exception_string"]

    def test_outside_a_trace_there_is_no_span(self, beeline_recorder, env):
        env.get_template("page.html").render(title="x", items=[])
        list(env.get_template("page.html").generate(title="x", items=[]))
        assert beeline_recorder.events == []


class TestStreaming:
    def test_generate_is_one_span_over_every_piece(self, beeline_recorder, env):
        with beeline.tracer("request") as root:
            pieces = list(env.get_template("page.html").generate(title="Hi", items=[1, 2]))
        assert "".join(pieces) == "<h1>Hi</h1><p>1</p><p>2</p>"
        span = beeline_recorder.find(name="jinja2_render_template")
        assert span["template.render_method"] == "generate"
        assert span["template.name"] == "page.html"
        assert span["trace.parent_id"] == root.id

    def test_stream(self, beeline_recorder, env):
        with beeline.tracer("request"):
            stream = env.get_template("page.html").stream(title="Hi", items=[1, 2, 3])
            stream.enable_buffering(2)
            assert "".join(stream) == "<h1>Hi</h1><p>1</p><p>2</p><p>3</p>"
        span = beeline_recorder.find(name="jinja2_render_template")
        assert span["template.render_method"] == "stream"

    def test_consumer_spans_between_pieces_are_not_children_of_the_template(self, beeline_recorder, env):
        pieces = 0
        with beeline.tracer("request") as root:
            for _ in env.get_template("page.html").generate(title="Hi", items=[1, 2]):
                pieces += 1
                with beeline.tracer("write_piece"):
                    pass
        template = beeline_recorder.find(name="jinja2_render_template")
        writes = beeline_recorder.spans(name="write_piece")
        assert len(writes) == pieces > 1
        assert {w["trace.parent_id"] for w in writes} == {root.id}
        assert template["trace.parent_id"] == root.id

    def test_closing_a_stream_early_finishes_the_span(self, beeline_recorder, env):
        with beeline.tracer("request"):
            pieces = env.get_template("page.html").generate(title="Hi", items=[1, 2])
            assert next(pieces) == "<h1>"
            pieces.close()
            assert template_spans(beeline_recorder) != []

    def test_a_stream_consumed_after_the_trace_ended_starts_nothing(self, beeline_recorder, env):
        with beeline.tracer("request"):
            pieces = env.get_template("page.html").generate(title="Hi", items=[1])
        assert "".join(pieces) == "<h1>Hi</h1><p>1</p>"
        assert template_spans(beeline_recorder) == []
        assert len(beeline_recorder.traces()) == 1

    def test_an_error_while_streaming_is_recorded(self, beeline_recorder, env):
        with beeline.tracer("request"):
            with pytest.raises(ZeroDivisionError):
                list(env.get_template("broken.html").generate(zero=0))
        span = beeline_recorder.find(name="jinja2_render_template")
        assert span["app.exception_type"] == "<class 'ZeroDivisionError'>"


class TestAsync:
    def test_render_async(self, beeline_recorder, async_env):
        async def main():
            with beeline.tracer("request") as root:
                html = await async_env.get_template("page.html").render_async(title="Hi")
            return root, html

        root, html = asyncio.run(main())
        assert html == "<h1>Hi</h1>"
        span = beeline_recorder.find(name="jinja2_render_template")
        assert span["template.render_method"] == "render_async"
        assert span["trace.parent_id"] == root.id

    def test_generate_async(self, beeline_recorder, async_env):
        async def main():
            with beeline.tracer("request"):
                return [p async for p in async_env.get_template("page.html").generate_async(title="Hi")]

        assert "".join(asyncio.run(main())) == "<h1>Hi</h1>"
        span = beeline_recorder.find(name="jinja2_render_template")
        assert span["template.render_method"] == "generate_async"

    def test_sync_render_in_async_mode_is_one_span(self, beeline_recorder, async_env):
        # Jinja2 runs render_async() under render() here; that must not double the span.
        with beeline.tracer("request"):
            assert async_env.get_template("page.html").render(title="Hi") == "<h1>Hi</h1>"
            assert "".join(async_env.get_template("page.html").generate(title="Hi")) == "<h1>Hi</h1>"
        assert [s["template.render_method"] for s in template_spans(beeline_recorder)] == ["render", "generate"]

    def test_concurrent_tasks_each_get_their_own_span(self, beeline_recorder, async_env):
        async def one(n):
            with beeline.tracer(f"task{n}") as span:
                await async_env.get_template("page.html").render_async(title=str(n))
                return span

        async def main():
            return await asyncio.gather(one(1), one(2))

        first, second = asyncio.run(main())
        parents = sorted(s["trace.parent_id"] for s in template_spans(beeline_recorder))
        assert parents == sorted([first.id, second.id])


class TestPatching:
    def test_patching_twice_wraps_once_and_unpatch_undoes_it(self, beeline_recorder, env):
        assert jinja2_patch.patch() is False
        try:
            assert jinja2_patch.unpatch() is True
            assert jinja2_patch.unpatch() is False
            with beeline.tracer("request"):
                env.get_template("page.html").render(title="x", items=[])
                list(env.get_template("page.html").generate(title="x", items=[]))
            assert template_spans(beeline_recorder) == []
        finally:
            assert jinja2_patch.patch() is True
        with beeline.tracer("request"):
            env.get_template("page.html").render(title="x", items=[])
        assert len(template_spans(beeline_recorder)) == 1
