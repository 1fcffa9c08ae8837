"""Discord end to end: a blend. /imagine takes `image`, `image2`, `image3`... (as many as the
catalog's largest reference-image limit, within Discord's 25 options), a reply takes several
attachments, and the model's own limit refuses more before anything is fetched."""

from __future__ import annotations

import pytest

from tests.e2e import test_discord, test_discord_downloads
from tests.e2e.test_discord import USER, World
from tests.support.images import png_bytes

# The Discord world of test_discord.py, with test_discord_downloads' more_env: IMAGINE_CONFIG
# holding the test's parameter (here a catalog override).
world, prepare = test_discord.world, test_discord.prepare
more_env = test_discord_downloads.more_env

THREE_FOR_PRO = "[models.pro]\nmax_reference_images = 3\n"


def _imagine_options(world: World) -> list[dict]:
    [command] = [c for c in world.discord.commands if c["name"] == "imagine"]
    return command["options"]


async def test_imagine_offers_an_image_option_for_each_reference_image_the_catalog_allows(world):
    options = _imagine_options(world)
    images = [o["name"] for o in options if o["type"] == 11]
    # Pro and Flash take 14 reference images: image, image2 ... image14, all optional.
    assert images == ["image", *(f"image{n}" for n in range(2, 15))]
    assert len(options) <= 25
    assert all(not o.get("required") for o in options if o["type"] == 11)


async def test_a_blend_of_three_images_sends_all_three_to_the_model(world):
    discord, gemini = world.discord, world.gemini
    photos = [png_bytes(8 + n, 8, color) for n, color in enumerate(("red", "green", "blue"))]
    given = {
        name: discord.attachment(data, filename=f"{name}.png")
        for name, data in zip(("image", "image2", "image3"), photos, strict=True)
    }
    await discord.slash("imagine", {"prompt": "the three of them at a picnic", **given}, user_id=USER)
    await discord.wait_for(lambda: world.thread_images())
    [request] = gemini.requests
    assert request.prompt == "the three of them at a picnic"
    assert request.input_images == photos  # in the order of the options


async def test_a_reply_with_two_attachments_blends_them_into_the_edit(world):
    discord, gemini = world.discord, world.gemini
    await discord.slash("imagine", {"prompt": "a picnic blanket"}, user_id=USER)
    await discord.wait_for(lambda: world.thread_images())
    [first] = world.thread_images()
    thread = next(iter(discord.threads.values()))
    photos = [png_bytes(9, 8, "red"), png_bytes(10, 8, "blue")]
    await discord.user_message(
        "put these two on it",
        user_id=USER,
        channel_id=thread.id,
        attachments=[discord.attachment(p, filename=f"p{n}.png") for n, p in enumerate(photos)],
    )
    await discord.wait_for(lambda: len(world.thread_images()) == 2)
    # The image being edited, then the two attachments.
    assert gemini.requests[1].input_images == [discord.attachment_bytes(first.attachments[0]), *photos]


@pytest.mark.parametrize("more_env", [THREE_FOR_PRO], indirect=True)
async def test_more_images_than_the_model_takes_are_refused_before_any_download(world):
    discord = world.discord
    given = {
        name: discord.attachment(png_bytes(8 + n, 8, "red"), filename=f"{name}.png")
        for n, name in enumerate(("image", "image2", "image3", "image4", "image5"))
    }
    await discord.slash("imagine", {"prompt": "all five of them", **given}, user_id=USER)
    await discord.wait_for(lambda: world.ephemeral_texts())
    assert "pro takes up to 3 images; you sent 5. Send fewer images." in world.ephemeral_texts()
    assert discord.downloads == [] and world.gemini.requests == []
