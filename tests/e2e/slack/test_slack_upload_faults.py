"""Slack end to end: uploads refused for a while (5xx, 429 with Retry-After) or answered with
a 500 after they took effect. Deliveries resume, and each job's image is posted once and its
status finalised once. The outage windows are seconds here (a minute in the issue); the
outbox's retry backoff is capped short by IMAGINE_OUTBOX_RETRY_MAX so the test need not wait."""

from __future__ import annotations

import pytest

SHORT_RETRIES = {"IMAGINE_OUTBOX_RETRY_MAX": "0.3"}


def _done_updates(slack) -> list[str]:
    return [c.args.get("text", "") for c in slack.calls_to("chat.update") if "Done" in c.args.get("text", "")]


def _thread_images(slack, thread_ts: str) -> list:
    return [m for m in slack.posted("C1") if m.thread_ts == thread_ts and m.files]


async def _imagine_posted_once(world, prompt: str) -> None:
    """Run /imagine to the end: one image in the status message's thread, one "Done"."""
    slack = world.slack
    status, _, _ = await world.command("/imagine", prompt)
    assert status == 200
    await slack.wait_for(lambda: world.statuses() and "Done" in world.statuses()[0].text, timeout=30)
    await world.settled()
    [parent] = world.statuses()
    assert len(_thread_images(slack, parent.ts)) == 1, slack.summary()
    assert len(_done_updates(slack)) == 1


@pytest.mark.parametrize("more_env", [SHORT_RETRIES])
async def test_uploads_refused_for_a_while_resume_and_post_once(world):
    slack = world.slack
    # Every step of files_upload_v2 is refused for a window: 503s, then 429s naming Retry-After.
    slack.refuse_for("files.getUploadURLExternal", 2.0, 503)
    slack.refuse_for("upload", 2.5, 500)
    slack.refuse_for("files.completeUploadExternal", 3.0, 429, retry_after=1)
    await _imagine_posted_once(world, "a lighthouse in fog")
    assert len(slack.uploads) == 1, slack.summary()
    # The outage was felt (so the test can fail): the refused calls were made and retried.
    assert len(slack.calls_to("files.getUploadURLExternal")) > 1


@pytest.mark.parametrize("more_env", [SHORT_RETRIES])
async def test_an_upload_whose_answer_was_lost_is_not_posted_again(world):
    slack = world.slack
    # The file is shared into the thread, then Slack answers 500: the bot can't tell it went up.
    slack.lose_answers("files.completeUploadExternal")
    await _imagine_posted_once(world, "a lighthouse at noon")
    # The retry found the file shared and did not upload or complete it again.
    assert len(slack.calls_to("files.completeUploadExternal")) == 1


@pytest.mark.parametrize("more_env", [SHORT_RETRIES])
async def test_a_lost_answer_whose_share_shows_late_is_not_posted_again(world):
    slack = world.slack
    # Real Slack shares a completed upload asynchronously: files.info may not show it yet
    # when the retry asks. The retry must wait for it rather than upload afresh.
    slack.share_lag = 2.0
    slack.lose_answers("files.completeUploadExternal")
    await _imagine_posted_once(world, "a lighthouse at dusk")
    assert len(slack.calls_to("files.info")) >= 2  # it did look while the share was hidden
