"""The IMAGINE_CONFIG file is checked whole when it is read: each wrong shape is one line
naming the file, the key, what was found and what was expected (issue 16)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.catalog import load_catalog, read_config
from policies.config import PolicyBook


def config_error(tmp_path: Path, text: str) -> str:
    """The one-line message reading `text` as IMAGINE_CONFIG gives."""
    path = tmp_path / "imagine.toml"
    path.write_text(text)
    with pytest.raises(ValueError) as caught:
        read_config(path)
    message = str(caught.value)
    assert "\n" not in message, message
    assert message.startswith(f"IMAGINE_CONFIG {path}: ") or message.startswith("cannot read IMAGINE_CONFIG"), message
    return message.removeprefix(f"IMAGINE_CONFIG {path}: ")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('models = "oops"', 'models: expected a table, found "oops"'),
        ('teams.T1 = "oops"', '[teams] T1: expected a table, found "oops"'),
        ("policy = 5", "policy: expected a table, found 5"),
        (
            '[routes.gemini]\nrequests_per_minute = "abc"',
            '[routes.gemini] requests_per_minute: expected a whole number, found "abc"',
        ),
        ("[routes.gemini]\nmax_concurrency = 0", "[routes.gemini] max_concurrency: expected at least 1, found 0"),
        ("[routes.gemini]\nrequests_per_minute = 1.5", "requests_per_minute: expected a whole number, found 1.5"),
        ('[models.pro.price]\n"4K" = -0.26', "[models.pro.price] 4K: expected at least 0, found -0.26"),
        ("[models.pro]\ninput_per_million = -2.0", "[models.pro] input_per_million: expected at least 0, found -2.0"),
        ('[models.pro]\nsizes = "1K"', '[models.pro] sizes: expected a list, found "1K"'),
        ('[models.pro]\nsizes = ["1K", "8K"]', 'sizes item 2: expected one of 512, 1K, 2K, 4K, found "8K"'),
        ('[models.pro.price]\n"3K" = 0.2', '[models.pro.price] 3K: expected one of 512, 1K, 2K, 4K, found "3K"'),
        ('[models.pro]\nlanes = ["standard", "turbo"]', "lanes item 2: expected one of"),
        ("[models.pro]\nshutdown = 5", "[models.pro] shutdown: expected a date like 2026-10-02, found 5"),
        ("[models.pro]\nprices = {}", "[models.pro] prices: unknown key; expected one of"),
        ("[polcy]\nuser_images_per_day = 5", "polcy: unknown table; expected one of access, defaults,"),
        ("[policy]\nuser_images_per_day = -1", "[policy] user_images_per_day: expected at least 0, found -1"),
        ('[policy]\nover_soft_threshold = "ask"', "expected one of 'downgrade' or 'confirm', found \"ask\""),
        ('[policy]\napprovals = "maybe"', '[policy] approvals: expected true or false, found "maybe"'),
        ("[teams.T1]\napprovals = 3", "[teams.T1] approvals: expected true or false, found 3"),
        ('[teams.T1]\nbanned_terms = "gore"', '[teams.T1] banned_terms: expected a list, found "gore"'),
        ('[teams.T1.channels.C1]\nsizes = ["2k"]', "[teams.T1.channels.C1] sizes item 1: expected one of 512, 1K, 2K"),
        ('[teams.T1]\nroles = "S1"', '[teams.T1] roles: expected a table, found "S1"'),
        (
            '[teams.T1.roles.S1]\nuser_images_per_day = "20"',
            "[teams.T1.roles.S1] user_images_per_day: expected a whole",
        ),
        (
            "[teams.T1.roles.S1]\nuser_daily_usd = -5",
            "[teams.T1.roles.S1] user_daily_usd: expected at least 0, found -5",
        ),
        ('[teams.T1.roles.S1]\nsizes = ["8K"]', "[teams.T1.roles.S1] sizes item 1: expected one of 512, 1K, 2K, 4K"),
        ('[teams.T1.roles.S1]\nmodels = "flash"', '[teams.T1.roles.S1] models: expected a list, found "flash"'),
        ("[teams.T1.roles.S1]\nimages = 5", "[teams.T1.roles.S1] images: unknown key; expected one of models, sizes,"),
        ('[access]\nteams = "T1"', '[access] teams: expected a list, found "T1"'),
        ('[gateways.acme.price]\npro = { "1K" = -1 }', "[gateways.acme.price.pro] 1K: expected at least 0, found -1"),
        ('[gateways.acme]\nprice = { "1K" = "free" }', '[gateways.acme.price] 1K: expected a number, found "free"'),
        ("[gateways.acme]\nbills_failed_calls = 1", "[gateways.acme] bills_failed_calls: expected true or false"),
        ("[retention]\nimages_days = -1", "[retention] images_days: expected at least 0, found -1"),
        ('[defaults]\nmodel = ["pro"]', "[defaults] model: expected a string, found a list"),
    ],
)
def test_each_wrong_shape_is_named_with_what_was_found_and_expected(tmp_path, text, expected):
    assert expected in config_error(tmp_path, text)


def test_several_problems_are_joined_and_at_most_five_are_shown(tmp_path):
    text = "[policy]\n" + "".join(f"bad_key_{n} = {n}\n" for n in range(7)) + "[routes.gemini]\nmax_concurrency = -1\n"
    message = config_error(tmp_path, text)
    assert message.startswith("[routes.gemini] max_concurrency: expected at least 1, found -1; "), message
    assert message.count("unknown key") == 4 and message.endswith("[policy] bad_key_3: unknown key; and 3 more")
    # The keys a table may hold are listed once, at its first unknown key.
    assert message.count("expected one of approvals, banned_terms, channels,") == 1, message


def test_a_file_that_is_not_toml_is_one_line_naming_the_file(tmp_path):
    message = config_error(tmp_path, "[policy\n")
    assert "line 1" in message


def catalog_error(tmp_path: Path, text: str) -> str:
    """The one-line message of a file whose shape is right but whose merged catalog is not."""
    path = tmp_path / "imagine.toml"
    path.write_text(text)
    read_config(path)
    with pytest.raises(ValueError) as caught:
        load_catalog(path)
    assert str(caught.value).startswith(f"IMAGINE_CONFIG {path}: "), caught.value
    return str(caught.value).removeprefix(f"IMAGINE_CONFIG {path}: ")


def test_what_only_the_merged_catalog_shows_is_named_with_the_file_too(tmp_path):
    assert catalog_error(tmp_path, '[models.new]\nid = "x"\n').startswith("[models.new] aspect_ratios: missing;")
    assert catalog_error(tmp_path, '[defaults]\nmodel = "nope"\n') == "default model 'nope' is not in the catalog"
    assert "names replacement 'gone'" in catalog_error(tmp_path, '[models.pro]\nreplacement = "gone"\n')


def test_a_good_file_is_read_and_its_objects_are_built_as_before(tmp_path):
    path = tmp_path / "imagine.toml"
    path.write_text(
        "[policy]\nuser_images_per_day = 5\n"
        '[teams.T1]\nfallback = { pro = ["flash"] }\n[teams.T1.channels.C1]\nsizes = ["2K"]\n'
        "[routes.gemini]\nrequests_per_minute = 60\nmax_concurrency = 8\n"
        '[models.pro]\nsizes = ["1k", "2K"]\nprice = { "1k" = 0.1, "2K" = 0.2 }\n'
        '[gateways.openrouter.price.flash]\n"1K" = 0.07\n'
        "[retention]\nimages_days = 90\n"
    )
    config = read_config(path)
    assert config["routes"]["gemini"] == {"requests_per_minute": 60, "max_concurrency": 8}
    book = PolicyBook.from_config(config)
    assert book.for_team("T1").user_images_per_day == 5 and book.for_team("T1").channels["C1"].sizes == ["2K"]
    pro = load_catalog(path).models["pro"]
    assert pro.sizes == ("1K", "2K") and str(pro.price["1K"]) == "0.1"


def test_no_file_is_an_empty_configuration():
    assert read_config(None) == {}
