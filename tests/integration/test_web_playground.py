"""The playground over HTTP (no browser), with a real worker rendering through the fake Gemini:
web requests are jobs of platform `web` under the team's budgets, with the chat adapters'
cost question, double-submit safety, refusals that change nothing, edits that chain, and
an outbox that does not fill up with undeliverable rows."""

from __future__ import annotations

import asyncio
import html
import re
from decimal import Decimal

import aiohttp
import pytest

from adapters.status import money
from bot.money.budgets import Budget, Period, Scope
from bot.providers.errors import user_message_for
from bot.types import JobState
from policies.config import PolicyBook
from tests.fakes.gemini_replies import error
from tests.support.images import png_bytes
from tests.support.playground import start_playground
from tests.support.probe import eventually

JOB_PATH = re.compile(r"^/dashboard/playground/jobs/(\d+)$")


@pytest.fixture
async def playground(tmp_path, fake):
    started = await start_playground(str(tmp_path / "play.db"), fake)
    yield started
    await started.close()


def hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, f"no hidden {name} in the page"
    return found.group(1)


async def open_form(browser, playground, **who) -> str:
    async with browser.get(playground.link(**who)) as r:
        assert r.status == 200
    async with browser.get(playground.base + "/dashboard/playground") as r:
        assert r.status == 200
        return await r.text()


def prompt_form(page: str, prompt: str, **options: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, value in {"csrf": hidden(page, "csrf"), "nonce": hidden(page, "nonce"), "prompt": prompt}.items():
        form.add_field(name, value)
    for name, value in options.items():
        form.add_field(name, value)
    return form


async def post(browser, url: str, form) -> tuple[int, str, str]:
    """(status, final path, body): redirects are not followed."""
    async with browser.post(url, data=form, allow_redirects=False) as r:
        return r.status, r.headers.get("Location", ""), await r.text()


def job_id_of(location: str) -> int:
    found = JOB_PATH.match(location)
    assert found, location
    return int(found.group(1))


async def finished(playground, browser, job_id: int) -> dict:
    """The job's status, polled as the page's script does, once it is done."""
    seen: dict = {}

    async def done() -> bool:
        async with browser.get(f"{playground.base}/dashboard/playground/jobs/{job_id}/status") as r:
            assert r.status == 200
            seen.update(await r.json())
        return bool(seen["done"])

    await eventually(done, 20, what=f"job {job_id} finishing")
    return seen


async def outbox_settles(playground, browser) -> None:
    async def empty() -> bool:
        async with browser.get(playground.base + "/healthz") as r:
            health = await r.json()
        return health["outbox_pending"] == 0 and health["queued"] == health["running"] == 0

    await eventually(empty, 10, what="/healthz's outbox_pending and queue at 0")


async def test_a_prompt_renders_as_a_web_job_charged_in_the_ledger_and_its_image_is_served(playground, browser):
    page = await open_form(browser, playground)
    assert 'aria-current="page">Playground' in page
    for label in ("Prompt", "Model", "Size", "Aspect ratio", "Lane"):
        assert re.search(rf'<label for="\w+">{label}</label>', page), label
    assert '<option value="flash"' in page and '<option value="16:9"' in page and '<option value="4K"' in page

    status, location, _ = await post(
        browser,
        playground.base + "/dashboard/playground",
        prompt_form(page, "a koi pond at dawn", model="flash", aspect_ratio="16:9", size="1K"),
    )
    assert status == 303
    job_id = job_id_of(location)
    async with browser.get(playground.base + location) as r:
        assert r.status == 200
        job_page = await r.text()
        assert "a koi pond at dawn" in job_page and "/static/playground.js" in job_page
        assert '<meta http-equiv="refresh"' in job_page  # the no-script fallback, while it runs

    view = await finished(playground, browser, job_id)
    job = await playground.store.get_job(job_id)
    assert job.state is JobState.SUCCEEDED
    assert (job.platform, job.channel, job.team, job.user) == ("web", "web", "T1", "U1")
    assert (job.spec.model_alias, job.spec.aspect_ratio, job.spec.size) == ("flash", "16:9", "1K")
    assert view["image_url"] == f"/dashboard/images/{job.result_image_id}"
    assert view["gallery_url"] == f"/dashboard/gallery/{job.result_image_id}"
    assert view["cost"] == money(job.result["cost_usd"]) and view["cost"].startswith("$0.")
    async with browser.get(playground.base + view["image_url"]) as r:
        assert r.status == 200 and r.content_type == "image/png"
        assert await r.read() == (await playground.store.get_image(job.result_image_id)).data
    async with browser.get(playground.base + location) as r:
        done_page = await r.text()
        assert f'src="/dashboard/images/{job.result_image_id}"' in done_page
        assert "Cost:" in done_page and "http-equiv" not in done_page and "playground.js" not in done_page

    ledger = [(r["entry"], r["channel"], r["user"]) for r in await playground.store.ledger(team="T1")]
    assert ledger == [("reservation", "web", "U1"), ("settlement", "web", "U1"), ("release", "web", "U1")]
    charged = [r["cost_micros"] for r in await playground.store.ledger(team="T1") if r["entry"] == "settlement"]
    assert charged == [int(Decimal(job.result["cost_usd"]) * 1_000_000)]
    await outbox_settles(playground, browser)


async def test_a_queued_job_shows_its_position_and_refreshes_until_it_runs(tmp_path, fake, browser):
    stopped = await start_playground(str(tmp_path / "queued.db"), fake, run_worker=False)
    try:
        locations = []
        for prompt in ("a first", "a second"):
            page = await open_form(browser, stopped)
            _, location, _ = await post(browser, stopped.base + "/dashboard/playground", prompt_form(page, prompt))
            locations.append(location)
        async with browser.get(f"{stopped.base}{locations[1]}/status") as r:
            view = await r.json()
        assert (view["state"], view["done"], view["image_url"], view["cost"]) == ("queued", False, None, None)
        assert view["line"].startswith("Queued, position 2 in the queue")
        async with browser.get(stopped.base + locations[0]) as r:
            page = await r.text()
        assert "Queued, next up" in page and '<meta http-equiv="refresh" content="2">' in page
    finally:
        await stopped.close()


async def test_a_failed_job_says_why_in_the_chat_adapters_words(playground, browser, fake):
    fake.script(error(403))
    page = await open_form(browser, playground)
    _, location, _ = await post(browser, playground.base + "/dashboard/playground", prompt_form(page, "a koi pond"))
    view = await finished(playground, browser, job_id_of(location))
    job = await playground.store.get_job(job_id_of(location))
    assert job.state is JobState.FAILED and view["image_url"] is None
    assert view["line"] == user_message_for(job.error_class)
    async with browser.get(playground.base + location) as r:
        body = html.unescape(await r.text())
    assert view["line"] in body and "http-equiv" not in body and 'id="job-result" hidden' in body
    await outbox_settles(playground, browser)


async def test_the_same_form_sent_twice_makes_one_job(playground, browser):
    page = await open_form(browser, playground)
    url = playground.base + "/dashboard/playground"
    first = await post(browser, url, prompt_form(page, "a lighthouse", model="flash"))
    second = await post(browser, url, prompt_form(page, "a lighthouse", model="flash"))
    assert first[0] == second[0] == 303 and first[1] == second[1]
    assert sum((await playground.store.counts_by_state()).values()) == 1
    # A fresh form (a new nonce) is a new request.
    page = await open_form(browser, playground)
    third = await post(browser, url, prompt_form(page, "a lighthouse", model="flash"))
    assert third[1] != first[1]
    await outbox_settles(playground, browser)


@pytest.mark.parametrize(
    ("prompt", "options", "says"),
    [
        ("a koi pond", {"size": "9K"}, "does not do size '9K'"),
        ("a koi pond", {"model": "dall-e"}, "Unknown model 'dall-e'"),
        ("   ", {}, "Tell me what to draw"),
        ("x" * 2001, {}, "the limit is 2,000"),
    ],
)
async def test_a_refused_request_keeps_nothing_but_the_prompt_in_its_box(playground, browser, prompt, options, says):
    page = await open_form(browser, playground)
    form = prompt_form(page, prompt, **options)
    status, _, body = await post(browser, playground.base + "/dashboard/playground", form)
    body = html.unescape(body)
    assert status == 400 and says in body and 'role="alert"' in body
    if prompt.strip():
        assert f">{prompt}</textarea>" in body
    assert await playground.store.counts_by_state() == {} and await playground.store.ledger() == []


async def test_over_budget_the_refusal_holds_nothing(playground, browser):
    await playground.store.set_budget(Budget("T1", Scope.TEAM, "", 10_000, Period.MONTH), "mod")  # $0.01
    page = await open_form(browser, playground)
    status, _, body = await post(browser, playground.base + "/dashboard/playground", prompt_form(page, "a koi pond"))
    assert status == 400 and "budget" in body.lower()
    assert ">a koi pond</textarea>" in body
    assert await playground.store.counts_by_state() == {} and await playground.store.ledger() == []


@pytest.fixture
async def asking(tmp_path, fake):
    """Team T1 is asked before any request over $0.05."""
    policies = PolicyBook(teams={"T1": {"confirm_above_usd": "0.05"}})
    started = await start_playground(str(tmp_path / "ask.db"), fake, policies=policies)
    yield started
    await started.close()


async def ask(browser, playground) -> str:
    page = await open_form(browser, playground)
    status, _, body = await post(
        browser, playground.base + "/dashboard/playground", prompt_form(page, "a castle", model="pro", size="4K")
    )
    assert status == 200 and "Confirm the cost" in body
    assert re.search(r'id="estimate">\$0\.\d+<', body) and 'id="flash-estimate"' in body
    assert await playground.store.counts_by_state() == {}  # nothing runs before the answer
    return body


@pytest.mark.parametrize(("choice", "model"), [("run", "pro"), ("flash", "flash")])
async def test_the_cost_question_runs_on_run_or_with_flash_once_however_often_pressed(asking, browser, choice, model):
    question = await ask(browser, asking)
    form = {"csrf": hidden(question, "csrf"), "token": hidden(question, "token"), "choice": choice}
    form["nonce"] = hidden(question, "nonce")
    url = asking.base + "/dashboard/playground/confirm"
    first = await post(browser, url, form)
    again = await post(browser, url, form)  # a double click
    assert first[0] == again[0] == 303 and first[1] == again[1]
    job_id = job_id_of(first[1])
    await finished(asking, browser, job_id)
    job = await asking.store.get_job(job_id)
    assert (job.state, job.spec.model_alias, job.platform) == (JobState.SUCCEEDED, model, "web")
    assert sum((await asking.store.counts_by_state()).values()) == 1
    await outbox_settles(asking, browser)


async def test_a_form_sent_twice_asks_twice_but_its_answers_make_one_job(asking, browser):
    page = await open_form(browser, asking)
    url = asking.base + "/dashboard/playground"
    questions = [(await post(browser, url, prompt_form(page, "a castle", model="pro", size="4K")))[2] for _ in range(2)]
    tokens = [hidden(question, "token") for question in questions]
    assert tokens[0] != tokens[1]
    answers = [
        await post(
            browser,
            asking.base + "/dashboard/playground/confirm",
            {"csrf": hidden(q, "csrf"), "nonce": hidden(q, "nonce"), "token": hidden(q, "token"), "choice": choice},
        )
        for q, choice in zip(questions, ("run", "flash"), strict=True)
    ]
    assert answers[0][0] == answers[1][0] == 303 and answers[0][1] == answers[1][1]
    job = await asking.store.get_job(job_id_of(answers[0][1]))
    assert job.spec.model_alias == "pro"  # the first answer's
    assert sum((await asking.store.counts_by_state()).values()) == 1
    await outbox_settles(asking, browser)


async def test_only_the_asker_can_answer_the_question(asking, browser):
    question = await ask(browser, asking)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as other:
        page = await open_form(other, asking, user="U2")
        form = {"csrf": hidden(page, "csrf"), "token": hidden(question, "token"), "choice": "run"}
        status, _, body = await post(other, asking.base + "/dashboard/playground/confirm", form)
    assert status == 409 and "Only the person who asked" in body
    assert await asking.store.counts_by_state() == {}


async def render(playground, browser, prompt: str = "a koi pond") -> tuple[int, int]:
    """A finished image: (its job, its image)."""
    page = await open_form(browser, playground)
    _, location, _ = await post(browser, playground.base + "/dashboard/playground", prompt_form(page, prompt))
    job_id = job_id_of(location)
    view = await finished(playground, browser, job_id)
    assert view["state"] == "succeeded"
    return job_id, view["image_id"]


def edit_form(page: str, instruction: str, upload: tuple[str, bytes, str] | None = None) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("csrf", hidden(page, "csrf"))
    form.add_field("nonce", hidden(page, "nonce"))
    form.add_field("instruction", instruction)
    if upload is not None:
        name, data, kind = upload
        form.add_field("reference", data, filename=name, content_type=kind)
    return form


async def edit(playground, browser, image_id: int, instruction: str, upload=None) -> tuple[int, str, str]:
    async with browser.get(f"{playground.base}/dashboard/playground/images/{image_id}/edit") as r:
        assert r.status == 200
        page = await r.text()
    return await post(
        browser,
        f"{playground.base}/dashboard/playground/images/{image_id}/edit",
        edit_form(page, instruction, upload),
    )


async def test_edits_chain_like_a_thread_with_and_without_a_reference(playground, browser, fake):
    _, first_image = await render(playground, browser)
    status, location, _ = await edit(playground, browser, first_image, "make it night")
    assert status == 303
    second = await playground.store.get_job(job_id_of(location))
    second_image = (await finished(playground, browser, second.id))["image_id"]
    reference = png_bytes(16, 16, "blue")
    status, location, _ = await edit(
        playground, browser, second_image, "add this boat", ("boat.png", reference, "image/png")
    )
    assert status == 303
    third = await playground.store.get_job(job_id_of(location))
    await finished(playground, browser, third.id)
    assert (second.kind, second.spec.parent_image_id, second.spec.prompt) == ("edit", first_image, "make it night")
    assert (third.kind, third.spec.parent_image_id, third.platform) == ("edit", second_image, "web")
    assert [i.data for i in await playground.store.job_inputs(third.id)] == [reference]
    async with browser.get(playground.base + location) as r:
        page = await r.text()
        assert f'href="/dashboard/gallery/{second_image}"' in page and "An edit of" in page
        # Where the result sits in its thread, and what the thread cost, as chat says it.
        assert re.search(r"edit 2 of this thread · this image \$[\d.]+ · thread total \$[\d.]+", page)
    view = await finished(playground, browser, second.id)
    assert view["lineage"].startswith("edit 1 of this thread · this image $")
    await outbox_settles(playground, browser)


@pytest.mark.parametrize(
    ("upload", "says"),
    [
        (("notes.txt", b"hello", "text/plain"), "notes.txt is not an image"),
        (("fake.png", b"<html>login</html>", "image/png"), "not an image I can read"),
        (("big.png", b"0" * (14 * 1024 * 1024 + 1), "image/png"), "big.png is larger than 14 MB"),
    ],
)
async def test_a_non_image_upload_is_refused_and_changes_nothing(playground, browser, upload, says):
    job_id, image_id = await render(playground, browser)
    before = await playground.store.counts_by_state(), len(await playground.store.ledger())
    status, _, body = await edit(playground, browser, image_id, "add a boat", upload)
    assert status == 400 and says in body and ">add a boat</textarea>" in body
    assert (await playground.store.counts_by_state(), len(await playground.store.ledger())) == before


async def test_an_upload_past_the_limit_gets_a_friendly_413(playground, browser):
    _, image_id = await render(playground, browser)
    huge = b"\x89PNG" + b"0" * (15 * 1024 * 1024)
    status, _, body = await edit(playground, browser, image_id, "add a boat", ("big.png", huge, "image/png"))
    assert status == 413 and "That upload is too large" in body and "Traceback" not in body
    assert sum((await playground.store.counts_by_state()).values()) == 1


async def test_another_team_sees_no_job_page_status_or_edit(playground, browser):
    job_id, image_id = await render(playground, browser)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as other:
        page = await open_form(other, playground, team="T2")
        for path in (f"jobs/{job_id}", f"jobs/{job_id}/status", f"images/{image_id}/edit", "jobs/999", "jobs/x"):
            async with other.get(f"{playground.base}/dashboard/playground/{path}") as r:
                assert r.status == 404, path
        status, _, _ = await post(
            other, f"{playground.base}/dashboard/playground/images/{image_id}/edit", edit_form(page, "steal it")
        )
        assert status == 404
    assert sum((await playground.store.counts_by_state()).values()) == 1


async def test_signed_out_the_playground_asks_for_a_link(playground, browser):
    for path in ("", "/jobs/1", "/jobs/1/status"):
        async with browser.get(f"{playground.base}/dashboard/playground{path}") as r:
            assert r.status == 401, path


async def test_a_post_without_the_csrf_token_is_refused(playground, browser):
    page = await open_form(browser, playground)
    form = aiohttp.FormData({"nonce": hidden(page, "nonce"), "prompt": "a koi pond"})
    status, _, body = await post(browser, playground.base + "/dashboard/playground", form)
    assert status == 403 and "This form has expired" in body
    assert await playground.store.counts_by_state() == {}


async def test_the_bot_s_web_server_takes_the_outbox_rows_of_web_jobs(tmp_path):
    """Wired as in production: with the dashboard served, the process's outbox dispatcher takes
    rows of platform `web` (they are marked delivered, not left pending)."""
    from bot import bootstrap
    from bot.settings import Settings

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'bot.db'}", port=0, imagine_web_secret="k" * 40)  # type: ignore[call-arg]
    runtime = await bootstrap.build(settings, notifiers=[])
    closers = await bootstrap.start_adapters(runtime, bootstrap.ROLES["web"])
    try:
        assert await runtime.store.raise_alert("web-check", ["web"], "a row for the web platform")
        assert await runtime.store.pending_deliveries() == 1
        stop = asyncio.Event()
        dispatching = asyncio.create_task(runtime.dispatcher.run(stop))

        async def taken() -> bool:
            return await runtime.store.pending_deliveries() == 0

        await eventually(taken, 10, what="the web row marked delivered")
        stop.set()
        runtime.dispatcher.wake()
        await asyncio.wait_for(dispatching, 10)
    finally:
        for close in reversed(closers):
            await close()
        await runtime.close()
