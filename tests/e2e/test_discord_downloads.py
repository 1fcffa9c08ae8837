"""Discord end to end: what can be refused from an attachment's metadata (how many, what type,
how big, a quota already used up) is refused before anything is fetched from the CDN."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e import test_discord
from tests.e2e.test_discord import USER, World
from tests.support.images import png_bytes

# The Discord world of test_discord.py, with this module's more_env.
world, prepare = test_discord.world, test_discord.prepare

ONE_A_DAY = "[policy]\nuser_images_per_day = 1\n"
TWO_IMAGES = "[models.pro]\nmax_reference_images = 2\n"


@pytest.fixture
def more_env(request, tmp_path: Path) -> dict[str, str]:
    """IMAGINE_CONFIG with the test's policy (its parameter)."""
    config = tmp_path / "imagine.toml"
    config.write_text(getattr(request, "param", ""))
    return {"IMAGINE_CONFIG": str(config)}


async def _first_image(world: World):
    discord = world.discord
    await discord.slash("imagine", {"prompt": "a koi pond"}, user_id=USER)
    await discord.wait_for(lambda: world.thread_images())
    return next(iter(discord.threads.values()))


@pytest.mark.parametrize("more_env", [ONE_A_DAY], indirect=True)
async def test_imagine_past_the_daily_images_fetches_no_attachment(world):
    discord = world.discord
    await _first_image(world)
    photo = discord.attachment(png_bytes(12, 8, "purple"))
    await discord.slash("imagine", {"prompt": "like this"}, user_id=USER, attachment=photo)
    await discord.wait_for(lambda: any("1 of your 1 images for today" in t for t in world.ephemeral_texts()))
    assert discord.downloads == []
    assert len(world.gemini.requests) == 1


@pytest.mark.parametrize("more_env", [TWO_IMAGES], indirect=True)
async def test_a_thread_message_with_too_many_images_fetches_none(world):
    discord = world.discord
    thread = await _first_image(world)
    photos = [discord.attachment(png_bytes(8, 8, c)) for c in ("red", "blue")]
    await discord.user_message("use these", user_id=USER, channel_id=thread.id, attachments=photos)
    # Two attachments plus the image being edited: three, for a model that takes two.
    await discord.wait_for(
        lambda: any("pro takes up to 2 images; you sent 3" in m.content for m in discord.posted(thread.id))
    )
    assert discord.downloads == []
    assert len(world.gemini.requests) == 1


async def test_an_attachment_that_says_it_is_not_an_image_is_never_fetched(world):
    discord = world.discord
    notes = discord.attachment(b"just some notes", filename="notes.txt", content_type="text/plain")
    await discord.slash("imagine", {"prompt": "like this"}, user_id=USER, attachment=notes)
    await discord.wait_for(lambda: any("notes.txt is not an image" in t for t in world.ephemeral_texts()))
    assert discord.downloads == [] and world.gemini.requests == []


async def test_an_attachment_larger_than_it_says_is_read_only_up_to_the_cap(world):
    discord = world.discord
    huge = discord.attachment(png_bytes(8, 8, "red") + bytes(15 * 1024 * 1024), filename="huge.png")
    huge["size"] = 1024  # the sender's word only
    await discord.slash("imagine", {"prompt": "like this"}, user_id=USER, attachment=huge)
    await discord.wait_for(lambda: any("huge.png is larger than 14 MB" in t for t in world.ephemeral_texts()))
    assert len(discord.downloads) == 1 and world.gemini.requests == []
