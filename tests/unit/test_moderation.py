"""Banned terms hold against text dressed up to slip past them: invisible format characters
(zero-width spaces, soft hyphens, joiners) and compatibility forms (full-width letters,
ligatures) are matched as the letters they show."""

from __future__ import annotations

import pytest

from policies.moderation import ModerationRefusal, check_prompt

BANNED = ("gore", "blood bath")


@pytest.mark.parametrize(
    "prompt",
    [
        "g\u200bore on the walls",  # zero-width space
        "go\u00adre",  # soft hyphen
        "go\u200dre",  # zero-width joiner
        "\ufeffgore",  # byte-order mark
        "\uff47\uff4f\uff52\uff45",  # full-width ｇｏｒｅ
        "GORE",
        "a blood\u00a0bath",  # no-break space between the words
        "a blood \u2060bath",  # word joiner
        "g\u0336o\u0336r\u0336e\u0336",  # struck through with combining marks
        "g\u034fore",  # combining grapheme joiner
        "g\ufe0fore",  # variation selector
        "g\u115fore",  # Hangul choseong filler
        "g\u3164ore",  # Hangul filler
        "g\u180bore",  # Mongolian free variation selector
        "gor\u00e9",  # an accent on a banned word
    ],
)
def test_banned_terms_are_found_through_disguises(prompt):
    with pytest.raises(ModerationRefusal) as refused:
        check_prompt(prompt, banned_terms=BANNED)
    assert refused.value.reason == "banned_term"


@pytest.mark.parametrize("prompt", ["gorevan mountains", "a goretex jacket", "bloodbath", "forge"])
def test_whole_words_only_still(prompt):
    assert check_prompt(prompt, banned_terms=BANNED) == prompt


def test_the_prompt_used_keeps_what_the_user_wrote():
    # Normalising is for matching only: a full-width or accented prompt goes to the model as typed.
    assert check_prompt("\uff21 caf\u00e9", banned_terms=BANNED) == "\uff21 caf\u00e9"
