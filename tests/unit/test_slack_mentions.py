"""A message that mentions the bot: its text without the bot's mention is the request."""

from __future__ import annotations

from adapters.slack.parse import mention_text


def test_the_bot_s_mention_goes_wherever_it_is_and_others_stay():
    assert mention_text("<@UBOT> a koi pond --ar 16:9", "UBOT") == "a koi pond --ar 16:9"
    assert mention_text("draw <@UBOT|imagine> a koi pond", "UBOT") == "draw a koi pond"
    assert mention_text("<@UBOT> <@U2> as a knight", "UBOT") == "<@U2> as a knight"
    assert mention_text("<@UBOT>", "UBOT") == ""


def test_without_the_bot_s_id_a_leading_mention_is_taken_for_it():
    assert mention_text("  <@UBOT> a koi pond", None) == "a koi pond"
    assert mention_text("a koi pond with <@U2>", None) == "a koi pond with <@U2>"
