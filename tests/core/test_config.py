"""init(): arguments, then environment, then defaults; classic vs Environments & Services keys."""

import logging

import pytest

import beeline
from beeline.testing import RecordingTransmission

CLASSIC = "a" * 32
CLASSIC_INGEST = "hcaic_" + "a" * 58
E_AND_S = "abcdefghijklmnopqrstuv"


def settings():
    return beeline.get_beeline().settings


def init(**kwargs):
    kwargs.setdefault("transmission_impl", RecordingTransmission())
    beeline.init(**kwargs)
    return settings()


def test_arguments_win_over_environment(monkeypatch):
    monkeypatch.setenv("HONEYCOMB_WRITEKEY", "b" * 32)
    monkeypatch.setenv("HONEYCOMB_DATASET", "env-ds")
    monkeypatch.setenv("HONEYCOMB_SERVICE", "env-svc")
    s = init(writekey=CLASSIC, dataset="arg-ds", service_name="arg-svc")
    assert (s.writekey, s.dataset, s.service_name) == (CLASSIC, "arg-ds", "arg-svc")


def test_environment_fills_the_gaps_in_the_reference_order(monkeypatch):
    monkeypatch.setenv("HONEYCOMB_API_KEY", "c" * 32)
    monkeypatch.setenv("HONEYCOMB_DATASET", "env-ds")
    monkeypatch.setenv("SERVICE_NAME", "svc-from-SERVICE_NAME")
    s = init()
    assert (s.writekey, s.dataset, s.service_name) == ("c" * 32, "env-ds", "svc-from-SERVICE_NAME")


def test_honeycomb_writekey_is_preferred_to_api_key(monkeypatch):
    monkeypatch.setenv("HONEYCOMB_WRITEKEY", "d" * 32)
    monkeypatch.setenv("HONEYCOMB_API_KEY", "e" * 32)
    assert init(dataset="x").writekey == "d" * 32


def test_default_service_name_uses_process_executable_name(monkeypatch, caplog):
    monkeypatch.setenv("PROCESS_EXECUTABLE_NAME", "worker")
    s = init(writekey=CLASSIC, dataset="d")
    assert s.service_name == "unknown_service:worker"
    assert "service_name is not set" in caplog.text


@pytest.mark.parametrize("key", [CLASSIC, CLASSIC_INGEST])
def test_classic_keys_keep_the_dataset(key):
    s = init(writekey=key, dataset="my-ds", service_name="svc")
    assert s.dataset == "my-ds" and s.classic_key


def test_uppercase_hex_key_is_not_classic():
    s = init(writekey="A" * 32, dataset="ignored", service_name="svc")
    assert not s.classic_key and s.dataset == "svc"


def test_environment_keys_use_the_trimmed_service_name_as_dataset(caplog):
    s = init(writekey=E_AND_S, dataset="ignored", service_name="  checkout  ")
    assert s.dataset == "checkout"
    assert "dataset is ignored" in caplog.text
    assert "leading or trailing spaces" in caplog.text


def test_environment_keys_without_service_go_to_unknown_service():
    assert init(writekey=E_AND_S).dataset == "unknown_service"


def test_service_fields_keep_the_raw_name(beeline_recorder_factory):
    recorder = beeline_recorder_factory(writekey=E_AND_S, service_name=" svc ")
    with beeline.tracer("root"):
        pass
    event = recorder.find(name="root")
    assert event["service_name"] == " svc " and event["service.name"] == " svc "
    assert recorder.sent[0].dataset == "svc"


def test_classic_key_without_dataset_is_not_silently_dropped(caplog):
    # The reference sent nothing at all; here the service name is used and the user is told.
    s = init(writekey=CLASSIC, service_name="svc")
    assert s.dataset == "svc"
    assert "dataset is not set" in caplog.text


@pytest.mark.parametrize(
    "kwargs,error",
    [
        ({"api_host": "ftp://x"}, ValueError),
        # Hosts no request can go to: refused here, not by every batch later.
        ({"api_host": "https://api.honey comb.io"}, ValueError),
        ({"api_host": "https://api.honeycomb.io:99999"}, ValueError),
        ({"api_host": "http://[::1"}, ValueError),
        ({"api_host": "https://" + "x" * 64 + ".io"}, ValueError),  # a DNS label is at most 63
        ({"api_host": "https://" + "é" * 64 + ".io"}, ValueError),
        ({"max_batch_size": 0}, ValueError),
        ({"send_frequency": -1}, ValueError),
        ({"max_concurrent_batches": "3"}, ValueError),
        ({"presend_hook": "not callable"}, TypeError),
        ({"sampler_hook": 3}, TypeError),
        ({"dataset": 5}, TypeError),
        ({"transmission_impl": object()}, TypeError),
        ({"no_such_option": 1}, TypeError),
    ],
)
def test_bad_settings_fail_at_init_with_a_clear_error(kwargs, error):
    kwargs.setdefault("transmission_impl", RecordingTransmission())
    with pytest.raises(error):
        beeline.init(writekey=CLASSIC, dataset="d", **kwargs)
    assert beeline.get_beeline() is None


def test_second_init_is_ignored_with_a_visible_warning(caplog):
    first = RecordingTransmission()
    init(writekey=CLASSIC, dataset="one", transmission_impl=first)
    beeline.init(writekey=CLASSIC, dataset="two", transmission_impl=RecordingTransmission())
    assert settings().dataset == "one"
    assert "already initialised" in caplog.text


def test_close_then_init_reconfigures():
    init(writekey=CLASSIC, dataset="one")
    beeline.close()
    assert init(writekey=CLASSIC, dataset="two").dataset == "two"


def test_kill_switch_turns_everything_into_no_ops(monkeypatch):
    monkeypatch.setenv("BEELINE_DISABLED", "true")
    recorder = RecordingTransmission()
    beeline.init(writekey=CLASSIC, dataset="d", transmission_impl=recorder)
    assert beeline.get_beeline() is None
    with beeline.tracer("root") as span:
        beeline.add_context_field("x", 1)
        assert span is None
    assert beeline.start_trace() is None
    assert recorder.sent == []


def test_debug_adds_exactly_one_handler_however_often_init_runs():
    logger = logging.getLogger("beeline")
    before = len(logger.handlers)
    for _ in range(3):
        init(writekey=CLASSIC, dataset="d", debug=True)
        beeline.close()
    assert len(logger.handlers) == before + 1


def test_the_write_key_never_reaches_a_log_line(caplog, monkeypatch):
    caplog.set_level(logging.DEBUG, logger="beeline")
    secret = "f" * 32
    s = init(writekey=secret, debug=True)  # no dataset: warns
    beeline.init(writekey=secret, dataset="again")  # ignored: warns
    assert secret not in caplog.text
    assert secret not in repr(s)
