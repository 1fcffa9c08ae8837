"""The playground in Chromium, against a real worker and the fake Gemini: a prompt becomes an
image on its job page without a reload (the page's script polls), "edit this" makes an edit
whose page links its parent, and the cost question answers [Use Flash]. Screenshots of each
page go to tmp/artifacts/."""

from __future__ import annotations

import re

import pytest

from policies.config import PolicyBook
from tests.support.browser import BROWSER, chromium_page, expect, shot
from tests.support.playground import start_playground

pytestmark = BROWSER
JOB_URL = re.compile(r".*/dashboard/playground/jobs/(\d+)$")


@pytest.fixture
async def page():
    async with chromium_page() as opened:
        yield opened


@pytest.fixture
async def playground(tmp_path, fake):
    fake.latency = 1.5  # long enough to see the job at work before its image
    started = await start_playground(str(tmp_path / "play.db"), fake)
    yield started
    await started.close()


async def job_id(page) -> int:
    found = JOB_URL.match(page.url)
    assert found, page.url
    return int(found.group(1))


async def image_shows(page) -> int:
    """Wait for the job's image to load in place; its image id."""
    image = page.locator("#job-image")
    await expect(image).to_be_visible(timeout=20_000)
    await expect(image).to_have_attribute("src", re.compile(r"^/dashboard/images/\d+$"))
    await page.wait_for_function("document.getElementById('job-image').naturalWidth > 0")
    return int((await image.get_attribute("src") or "").rsplit("/", 1)[1])


async def test_a_render_then_an_edit_show_up_live_and_chain(playground, page):
    await page.goto(playground.link())
    await page.get_by_role("link", name="Playground").click()
    await expect(page.get_by_role("heading", name="Playground", level=1)).to_be_visible()
    await page.get_by_label("Prompt").fill("a koi pond at dawn")
    await page.get_by_label("Model").select_option("flash")
    await page.get_by_label("Aspect ratio").select_option("16:9")
    await shot(page, "playground-form")
    await page.get_by_role("button", name="Make the image").click()

    await page.wait_for_url(JOB_URL)
    first_job = await job_id(page)
    # Marks this document: a reload would lose it.
    await page.evaluate("window.stillTheSamePage = true")
    status = page.get_by_role("status")
    await expect(status).to_contain_text(re.compile("Queued|Generating"))
    await expect(status).to_contain_text("Generating with flash", timeout=10_000)
    await shot(page, "playground-job-running")
    first_image = await image_shows(page)
    await expect(status).to_contain_text("Done")
    await expect(page.locator("#job-cost")).to_have_text(re.compile(r"^\$0\.\d+$"))
    # Shown live too: where the image sits in its thread, as chat says it under an image.
    await expect(page.locator("#job-lineage")).to_have_text(re.compile(r"^the original of this thread · this image"))
    assert await page.evaluate("window.stillTheSamePage === true"), "the page reloaded"
    await expect(page.get_by_role("link", name="This image in the gallery")).to_have_attribute(
        "href", f"/dashboard/gallery/{first_image}"
    )
    await shot(page, "playground-job-done")

    # Edit this: the edit's page links the image it was made from.
    await page.get_by_label("What to change").fill("make it night")
    await page.get_by_role("button", name="Edit this image").click()
    await page.wait_for_url(JOB_URL)
    assert await job_id(page) != first_job
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Edit")
    await expect(page.locator("#parent-link")).to_have_attribute("href", f"/dashboard/gallery/{first_image}")
    edit_image = await image_shows(page)
    assert edit_image != first_image
    await shot(page, "playground-edit-done")
    edit = await playground.store.get_job(await job_id(page))
    assert (edit.kind, edit.platform, edit.spec.parent_image_id) == ("edit", "web", first_image)

    # In the gallery: the edit's lineage (the render, then the edit) and the thread's running
    # cost, which is what the ledger charged the two web jobs.
    await page.get_by_role("link", name="This image in the gallery").click()
    steps = page.locator("li.step")
    await expect(steps).to_have_count(2)
    assert [await steps.nth(i).get_attribute("data-image-id") for i in range(2)] == [
        str(first_image),
        str(edit_image),
    ]
    charged = sum(
        row["cost_micros"]
        for row in await playground.store.ledger(team="T1")
        if row["entry"] == "settlement" and row["job_id"] in (first_job, edit.id)
    )
    summary = page.locator("#thread-summary")
    await expect(summary).to_contain_text("Edit 1 of this thread")
    assert charged > 0 and await summary.get_attribute("data-running-micros") == str(charged)
    assert await summary.get_attribute("data-thread-micros") == str(charged)
    await shot(page, "playground-edit-in-the-gallery")


async def test_on_a_phone_the_form_fits_and_a_bad_upload_is_refused_in_words(playground, page, tmp_path):
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.goto(playground.link())
    await page.goto(playground.base + "/dashboard/playground")
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await page.get_by_label("Prompt").fill("a lighthouse")
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    await page.get_by_label(re.compile("^Reference image")).set_input_files(str(notes))
    await page.get_by_role("button", name="Make the image").click()
    await expect(page.get_by_role("alert")).to_contain_text("notes.txt is not an image")
    await expect(page.get_by_label("Prompt")).to_have_value("a lighthouse")
    await shot(page, "playground-refused-phone")
    assert await playground.store.counts_by_state() == {}


async def test_the_cost_question_answers_use_flash(tmp_path, fake, page):
    policies = PolicyBook(teams={"T1": {"confirm_above_usd": "0.05"}})
    playground = await start_playground(str(tmp_path / "ask.db"), fake, policies=policies)
    try:
        await page.goto(playground.link())
        await page.goto(playground.base + "/dashboard/playground")
        await page.get_by_label("Prompt").fill("a castle")
        await page.get_by_label("Model").select_option("pro")
        await page.get_by_label("Size").select_option("4K")
        await page.get_by_role("button", name="Make the image").click()
        await expect(page.get_by_role("heading", name="Confirm the cost")).to_be_visible()
        await expect(page.locator("#estimate")).to_have_text(re.compile(r"^\$0\.\d+$"))
        await shot(page, "playground-confirm")
        await page.get_by_role("button", name="Use Flash").click()
        await page.wait_for_url(JOB_URL)
        await image_shows(page)
        job = await playground.store.get_job(await job_id(page))
        assert job.spec.model_alias == "flash"
    finally:
        await playground.close()


async def test_without_javascript_the_job_page_refreshes_itself_into_the_image(playground):
    async with chromium_page(java_script_enabled=False) as page:
        await page.goto(playground.link())
        await page.goto(playground.base + "/dashboard/playground")
        await page.get_by_label("Prompt").fill("a koi pond, no script")
        await page.get_by_label("Model").select_option("flash")
        await page.get_by_role("button", name="Make the image").click()
        await page.wait_for_url(JOB_URL)
        # The <noscript> refresh (every 2 s) brings the finished page: its image, its cost.
        await expect(page.locator("#job-image")).to_be_visible(timeout=20_000)
        await expect(page.locator("#job-cost")).to_have_text(re.compile(r"^\$0\.\d+$"))
        await shot(page, "playground-job-done-no-script")


async def test_the_form_works_with_the_keyboard_only(playground, page):
    await page.goto(playground.link())
    await page.goto(playground.base + "/dashboard/playground")

    async def tab_to(element_id: str) -> None:
        for _ in range(20):
            await page.keyboard.press("Tab")
            if await page.evaluate("document.activeElement.id") == element_id:
                return
        raise AssertionError(f"Tab never reached #{element_id}")

    await tab_to("prompt")
    await page.keyboard.type("a koi pond by keyboard")
    await tab_to("model")
    await page.keyboard.press("ArrowDown")  # from "Default" to the first model
    first_model = await page.locator("#model option").nth(1).get_attribute("value")
    await expect(page.get_by_label("Model")).to_have_value(first_model or "")
    await tab_to("reference")
    await page.keyboard.press("Tab")  # the button after the file box
    assert await page.evaluate("document.activeElement.textContent") == "Make the image"
    await page.keyboard.press("Enter")
    await page.wait_for_url(JOB_URL)
    await image_shows(page)
    job = await playground.store.get_job(await job_id(page))
    assert (job.spec.prompt, job.spec.model_alias) == ("a koi pond by keyboard", first_model)
