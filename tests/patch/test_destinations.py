"""The destination-host allow-list for trace headers.

Made-up host names are reached through the recording server acting as an HTTP proxy, so every
connection still goes to 127.0.0.1 while the client addresses `api.internal` or `outside.example`.
"""

from __future__ import annotations

import logging
import urllib.request

import pytest
import requests

import beeline
import beeline.patch.requests  # noqa: F401  (applies the patch)
import beeline.patch.urllib  # noqa: F401  (applies the patch)
from beeline.propagation import destinations
from beeline.propagation.destinations import (
    ENV_VAR,
    allowed_host,
    allowed_url,
    parse_hosts,
    propagation_headers_for,
    validate_propagate_hosts,
    without_userinfo,
)

HEADER = "x-honeycomb-trace"


def set_setting(value):
    """What `init(propagate_hosts=...)` will store once the core accepts the argument."""
    beeline.get_beeline().settings.propagate_hosts = value


class TestParsing:
    def test_list_tuple_and_comma_separated_string_are_equivalent(self):
        expected = ("api.internal", "*.example.com")
        assert validate_propagate_hosts(["api.internal", "*.example.com"]) == expected
        assert validate_propagate_hosts(("api.internal", "*.example.com")) == expected
        assert validate_propagate_hosts(" api.internal , *.example.com ,") == expected

    def test_entries_are_normalised(self):
        assert validate_propagate_hosts(["API.Internal.", "[::1]", "*.Example.COM", "bücher.example"]) == (
            "api.internal",
            "::1",
            "*.example.com",
            "xn--bcher-kva.example",
        )

    def test_none_means_not_set(self):
        assert validate_propagate_hosts(None) is None
        assert parse_hosts(None) is None

    @pytest.mark.parametrize(
        "bad",
        [
            ["api.internal:8080"],
            ["http://api.internal"],
            ["api.internal/path"],
            ["a*.example.com"],
            ["*example.com"],
            ["api internal"],
            [""],
            ["*."],
            ["user@api.internal"],
        ],
    )
    def test_bad_entries_are_refused_with_a_message(self, bad):
        with pytest.raises(ValueError, match="beeline.init: propagate_hosts"):
            validate_propagate_hosts(bad)

    @pytest.mark.parametrize("bad", [42, {"api.internal": True}, [b"api.internal"], [None]])
    def test_wrong_types_are_refused(self, bad):
        with pytest.raises(TypeError, match="propagate_hosts"):
            validate_propagate_hosts(bad)


class TestMatching:
    @pytest.mark.parametrize(
        "host, allowed",
        [
            ("api.internal", True),
            ("API.INTERNAL", True),
            ("api.internal.", True),
            ("other.internal", False),
            ("svc.example.com", True),
            ("a.b.example.com", True),
            ("example.com", False),  # "*.example.com" is below example.com only
            ("badexample.com", False),
            ("example.com.evil.net", False),
            ("::1", True),
            ("[::1]", True),
            ("", False),
            (None, False),
        ],
    )
    def test_hosts(self, host, allowed):
        rules = parse_hosts(["api.internal", "*.example.com", "[::1]"])
        assert rules.allows(host) is allowed

    def test_star_allows_everything(self):
        assert parse_hosts("*").allows("anything.at.all")

    def test_an_empty_list_allows_nothing(self):
        assert not parse_hosts([]).allows("api.internal")

    def test_urls(self, beeline_recorder):
        set_setting(("api.internal",))
        assert allowed_url("http://api.internal:8080/x?y=1")
        assert allowed_url(b"https://user:pw@api.internal/")
        assert not allowed_url("http://api.internal.evil.net/")
        assert not allowed_url("not a url")


class TestWhereTheSettingComesFrom:
    def test_default_is_everywhere(self, beeline_recorder):
        assert destinations.current_rules() is None
        assert allowed_host("anything.example")

    def test_environment_variable(self, beeline_recorder, monkeypatch):
        monkeypatch.setenv(ENV_VAR, "api.internal,*.corp.example")
        assert allowed_host("api.internal")
        assert allowed_host("db.corp.example")
        assert not allowed_host("api.thirdparty.com")

    def test_environment_variable_without_init(self, monkeypatch):
        beeline.close()
        monkeypatch.setenv(ENV_VAR, "api.internal")
        assert allowed_host("api.internal") and not allowed_host("elsewhere")

    def test_empty_environment_variable_counts_as_unset(self, beeline_recorder, monkeypatch):
        monkeypatch.setenv(ENV_VAR, " ")
        assert allowed_host("anything.example")

    def test_unreadable_entries_in_the_environment_are_dropped_with_a_warning(
        self, beeline_recorder, monkeypatch, caplog
    ):
        caplog.set_level(logging.WARNING, logger="beeline")
        monkeypatch.setenv(ENV_VAR, "api.internal:443,good.internal")
        assert allowed_host("good.internal")
        assert not allowed_host("api.internal")
        assert any(ENV_VAR in r.getMessage() and "port" in r.getMessage() for r in caplog.records)

    def test_init_setting_wins_over_the_environment(self, beeline_recorder, monkeypatch):
        monkeypatch.setenv(ENV_VAR, "from.env")
        set_setting(("from.init",))
        assert allowed_host("from.init")
        assert not allowed_host("from.env")

    def test_a_setting_of_none_falls_back_to_the_environment(self, beeline_recorder, monkeypatch):
        monkeypatch.setenv(ENV_VAR, "from.env")
        set_setting(None)
        assert allowed_host("from.env") and not allowed_host("other")

    def test_init_accepts_propagate_hosts(self, monkeypatch):
        monkeypatch.setenv(ENV_VAR, "elsewhere")  # the argument wins over the environment
        beeline.close()
        try:
            beeline.init(writekey="0" * 32, dataset="d", service_name="s", propagate_hosts=["api.internal"])
            assert allowed_host("api.internal") and not allowed_host("elsewhere")
        finally:
            beeline.close()

    def test_init_rejects_a_bad_propagate_hosts(self):
        with pytest.raises(TypeError, match="propagate_hosts"):
            beeline.init(writekey="0" * 32, dataset="d", service_name="s", propagate_hosts=42)
        assert beeline.get_beeline() is None

    def test_propagation_headers_for(self, beeline_recorder):
        set_setting(("api.internal",))
        with beeline.tracer("request"):
            assert HEADER in {k.lower() for k in propagation_headers_for("http://api.internal/")}
            assert propagation_headers_for("http://outside.example/") is None
        assert propagation_headers_for("http://api.internal/") is None  # no trace


class TestOnTheWire:
    def test_requests_sends_headers_only_to_allowed_hosts(self, beeline_recorder, server):
        set_setting(("api.internal",))
        proxies = {"http": server.url}
        with beeline.tracer("request"):
            beeline.add_trace_field("user_email", "someone@example.com")
            requests.get("http://api.internal/ok", proxies=proxies)
            requests.get("http://outside.example/ok", proxies=proxies)
        inside, outside = server.requests
        assert (inside.target_host, outside.target_host) == ("api.internal", "outside.example")
        assert inside.header(HEADER) is not None
        assert outside.header(HEADER) is None
        assert not any("honeycomb" in name or "traceparent" in name for name in outside.headers)
        # Both calls are still traced; only the headers are held back.
        assert len(beeline_recorder.spans(meta__type="http_client")) == 2

    def test_requests_redirect_to_an_outside_host_drops_the_header(self, beeline_recorder, server):
        set_setting(("api.internal",))
        with beeline.tracer("request"):
            response = requests.get(
                "http://api.internal/redirect?to=http://outside.example/ok", proxies={"http": server.url}
            )
        assert response.status_code == 200
        first, second = server.requests
        assert (first.target_host, second.target_host) == ("api.internal", "outside.example")
        assert first.header(HEADER) is not None
        assert second.header(HEADER) is None

    def test_requests_redirect_back_to_an_allowed_host_gets_the_header_again(self, beeline_recorder, server):
        set_setting(("*.internal",))
        target = "http://outside.example/redirect?to=http://back.internal/ok"
        with beeline.tracer("request"):
            requests.get("http://api.internal/redirect?to=" + requests.utils.quote(target, safe=""),
                         proxies={"http": server.url})
        assert [(r.target_host, r.header(HEADER) is not None) for r in server.requests] == [
            ("api.internal", True),
            ("outside.example", False),
            ("back.internal", True),
        ]

    def test_urllib_sends_headers_only_to_allowed_hosts(self, beeline_recorder, server):
        set_setting(("api.internal",))
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": server.url}))
        with beeline.tracer("request"):
            opener.open("http://api.internal/ok").read()
            opener.open("http://outside.example/ok").read()
            opener.open("http://api.internal/redirect?to=http://outside.example/ok").read()
        hosts = [(r.target_host, r.header(HEADER) is not None) for r in server.requests]
        assert hosts == [
            ("api.internal", True),
            ("outside.example", False),
            ("api.internal", True),
            ("outside.example", False),
        ]

    def test_environment_variable_on_the_wire(self, beeline_recorder, server, monkeypatch):
        monkeypatch.setenv(ENV_VAR, "api.internal")
        with beeline.tracer("request"):
            requests.get("http://elsewhere.example/ok", proxies={"http": server.url})
        assert server.last().header(HEADER) is None


class TestUserinfo:
    @pytest.mark.parametrize(
        "url, expected",
        [
            ("http://u:p@host:81/a?b=1", "http://host:81/a?b=1"),
            ("https://token@host/", "https://host/"),
            ("http://host/a@b", "http://host/a@b"),
            ("http://host/", "http://host/"),
            (b"http://u:p@host/", "http://host/"),
            (None, None),
        ],
    )
    def test_without_userinfo(self, url, expected):
        assert without_userinfo(url) == expected
