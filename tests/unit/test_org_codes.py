"""Link codes: short, unambiguous, typed back in any form."""

from __future__ import annotations

from bot.org_links import CODE_ALPHABET, CODE_LENGTH, code_hash, new_code, normalised, shown


def test_a_code_has_no_look_alike_letters_and_forty_bits():
    codes = {new_code() for _ in range(200)}
    assert len(codes) == 200
    assert all(len(c) == CODE_LENGTH and set(c) <= set(CODE_ALPHABET) for c in codes)
    assert not set("01IO") & set(CODE_ALPHABET) and len(CODE_ALPHABET) ** CODE_LENGTH == 2**40


def test_a_shown_code_typed_back_in_any_case_or_spacing_is_the_same_code():
    code = "K7P2M9QD"
    assert shown(code) == "K7P2-M9QD"
    for typed in ("K7P2-M9QD", "k7p2-m9qd", " k7p2 m9qd ", "K7P2M9QD"):
        assert code_hash(normalised(typed)) == code_hash(code)
    assert code_hash(code) != code and len(code_hash(code)) == 64  # only the digest is stored
