"""The gallery in a real browser (Chromium, tests/support/browser.py): a few images
and a thread of edits made through the store with real PNGs, an image opened with its
lineage and running cost, and one deleted by its requester after the confirmation page.
Screenshots of each page go to tmp/artifacts/."""

from __future__ import annotations

from tests.support.browser import BROWSER, expect, shot
from tests.support.gallery import render

pytestmark = BROWSER


async def test_open_an_image_see_its_lineage_and_delete_it(dashboard, page):
    store = dashboard.store
    await render(store, "a red fox in the snow", 134_000, color="firebrick", width=320, height=240)
    await render(store, "a koi pond at dawn", 67_000, user="U2", color="teal", model="flash", width=256, height=256)
    root = await render(store, "a lighthouse on a cliff", 134_000, color="steelblue", width=256, height=256)
    warmer = await render(store, "make the light warmer", 40_000, parent=root, color="orange", width=256, height=256)
    night = await render(store, "now at night", 30_000, parent=warmer, color="midnightblue", width=256, height=256)
    await render(store, "add a storm", 20_000, parent=root, color="slategray", width=256, height=256)
    await render(store, "another team's secret", 9_000, team="T2", color="black")

    await page.goto(dashboard.link(user="U1"))
    await page.get_by_role("link", name="Gallery").click()
    await expect(page.get_by_role("heading", name="Gallery", level=1)).to_be_visible()
    tiles = page.locator("li.tile")
    await expect(tiles).to_have_count(6)
    assert "another team's secret" not in await page.inner_text("main")
    first = tiles.first.locator("img")
    assert await first.get_attribute("alt") == "add a storm"
    # Drawn from its bytes, not a broken image.
    await expect(first).to_have_js_property("complete", True)
    assert await first.evaluate("img => img.naturalWidth") == 256
    await shot(page, "gallery")

    await page.get_by_role("link", name="now at night").click()
    await expect(page.get_by_role("heading", name="now at night", level=1)).to_be_visible()
    summary = page.locator("#thread-summary")
    await expect(summary).to_contain_text("Edit 2 of this thread")
    await expect(summary).to_contain_text("running cost $0.20 · thread total $0.22")
    assert await summary.get_attribute("data-running-micros") == "204000"
    assert await summary.get_attribute("data-thread-micros") == "224000"
    steps = page.locator("li.step")
    assert [await steps.nth(i).get_attribute("data-image-id") for i in range(await steps.count())] == [
        str(root),
        str(warmer),
        str(night),
        str(root + 3),
    ]
    assert await page.locator("li.step[aria-current=true]").get_attribute("data-image-id") == str(night)
    await shot(page, "gallery-image")

    # Its requester deletes the middle of the chain: a confirmation first, then for real.
    await page.get_by_role("link", name="make the light warmer").click()
    await page.get_by_role("link", name="Delete this image").click()
    await expect(page.get_by_role("heading", name="Delete this image?")).to_be_visible()
    await shot(page, "gallery-delete-confirm")
    await page.get_by_role("link", name="Cancel").click()
    await expect(page.get_by_role("heading", name="make the light warmer", level=1)).to_be_visible()
    await page.get_by_role("link", name="Delete this image").click()
    await page.get_by_role("button", name="Delete").click()
    await expect(page.get_by_role("status")).to_have_text("The image was deleted.")
    await expect(tiles).to_have_count(5)
    assert await store.get_image(warmer) is None
    await shot(page, "gallery-after-delete")

    # Its edit still shows the thread, the deleted step marked, its cost still counted.
    await page.get_by_role("link", name="now at night").click()
    gone = page.locator(f'li.step[data-image-id="{warmer}"]')
    await expect(gone).to_contain_text("(deleted)")
    assert await gone.locator(":scope > .step-body img").count() == 0  # its edits below keep theirs
    assert await page.locator("#thread-summary").get_attribute("data-thread-micros") == "224000"
    await shot(page, "gallery-image-after-delete")

    # On a phone: nothing wider than the screen.
    await page.set_viewport_size({"width": 390, "height": 800})
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await shot(page, "gallery-image-phone")
    await page.get_by_role("link", name="Back to the gallery").click()
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await shot(page, "gallery-phone")
