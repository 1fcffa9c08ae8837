"""A chat action that fails on an outage is told so in words, and logged as one line; any other
failure keeps its trace in the log and shows the user one line without the exception's text."""

from __future__ import annotations

import logging

from bot.apology import SORRY, STORE_DOWN_NOW, apology, outage_behind
from bot.store.ports import StoreUnavailable


class Wrapped(Exception):
    """Shaped like discord.py's CommandInvokeError: the listener's exception as `.original`."""

    def __init__(self, original: BaseException) -> None:
        super().__init__("Command raised an exception")
        self.original = original


def test_an_outage_is_found_inside_the_sdk_wrappers_and_chained_errors():
    down = StoreUnavailable("couldn't get a connection after 10.00 sec")
    assert outage_behind(down) is down
    assert outage_behind(Wrapped(down)) is down
    try:
        try:
            raise down
        except StoreUnavailable as exc:
            raise RuntimeError("job read failed") from exc
    except RuntimeError as chained:
        assert outage_behind(Wrapped(chained)) is down
    assert outage_behind(Wrapped(ValueError("boom"))) is None


def test_an_outage_is_one_warning_line_and_its_own_words(caplog):
    log = logging.getLogger("test.apology")
    with caplog.at_level(logging.WARNING, logger="test.apology"):
        said = apology(Wrapped(StoreUnavailable("connection refused")), log, "slack: reroll")
    assert said == STORE_DOWN_NOW
    [record] = caplog.records
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert "connection refused" in record.getMessage()


def test_a_bug_keeps_its_trace_in_the_log_and_not_in_the_answer(caplog):
    log = logging.getLogger("test.apology")
    with caplog.at_level(logging.WARNING, logger="test.apology"):
        said = apology(KeyError("secret-internal-detail"), log, "slack: reroll")
    assert said == SORRY and "secret-internal-detail" not in said
    [record] = caplog.records
    assert record.levelno == logging.ERROR and record.exc_info is not None
