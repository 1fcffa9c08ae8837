"""What chat says about an image's place in its thread: the line under each posted image,
[Undo]'s answer, and /imagine-history in a thread and outside one."""

from __future__ import annotations

from bot import lineage_text
from bot.gallery import lineage_of
from tests.unit.test_gallery_lineage import THREAD, image


def test_the_line_under_an_edit_names_its_place_its_cost_and_the_thread_total():
    lineage = lineage_of(THREAD, 4)
    assert lineage is not None
    assert lineage.summary() == "edit 2 of this thread · this image $0.03 · thread total $0.22"


def test_the_first_image_of_a_thread_says_it_starts_the_thread():
    lineage = lineage_of([image(7, None, 134_000)], 7)
    assert lineage is not None
    assert lineage.summary() == "the original of this thread · this image $0.13 · thread total $0.13"


def test_a_cache_hit_costs_nothing_though_its_image_cost_someone_money_once():
    lineage = lineage_of([image(7, None, 134_000)], 7)
    assert lineage is not None
    line = lineage.summary(cached=True)
    assert line == (
        "the original of this thread · this image $0.00 (answered from an earlier request) · thread total $0.13"
    )


def test_undo_says_what_was_undone_and_what_the_next_reply_edits():
    lineage = lineage_of(THREAD, 2)
    assert lineage is not None
    undone = next(i for i in THREAD if i.id == 4)
    assert lineage_text.undone(undone, lineage) == (
        'undid edit 2 ("prompt 4"): the thread\'s latest image is edit 1 again ("prompt 2"), '
        "so the next reply here edits that one. Nothing was charged; the thread total stays $0.22."
    )
    root = lineage_of(THREAD, 1)
    assert root is not None
    assert 'the thread\'s latest image is the original again ("prompt 1")' in lineage_text.undone(
        next(i for i in THREAD if i.id == 2), root
    )


def test_history_in_a_thread_lists_every_image_with_its_prompt_and_cost_and_marks_the_latest():
    lineage = lineage_of(THREAD, 4)
    assert lineage is not None
    assert lineage_text.history(lineage).splitlines() == [
        "This thread: 4 images · thread total $0.22",
        '• original: "prompt 1" · $0.13 · deleted',
        '  • edit 1: "prompt 2" · $0.04',
        '    • edit 2: "prompt 4" · $0.03 · latest: the next reply edits this one',
        '  • edit 1: "prompt 3" · $0.02',
    ]


def test_history_clips_long_prompts_to_one_short_line():
    long = image(9, None, 1_000)
    lineage = lineage_of([long.__class__(**{**long.__dict__, "prompt": "a very long prompt\n" * 20})], 9)
    assert lineage is not None
    first_image = lineage_text.history(lineage).splitlines()[1]
    assert len(lineage_text.history(lineage).splitlines()) == 2 and len(first_image) < 160 and "…" in first_image


def test_history_outside_a_thread_lists_the_user_s_last_images():
    images = [image(4, 2, 30_000), image(1, None, 134_000)]
    assert lineage_text.recent(images).splitlines() == [
        "Your last 2 images (newest first):",
        '• "prompt 4" · edit · pro 1K · $0.03',
        '• "prompt 1" · pro 1K · $0.13',
    ]
    assert lineage_text.recent([]) == "You have no images yet. Make one with /imagine."
