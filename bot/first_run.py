"""The first run: only a Gemini key, no Slack, no Discord. `python -m bot run` then serves the
web dashboard and prints a one-time link that signs the operator in as a moderator of a local
team, so a newcomer can render, edit and watch spend in the browser before wiring up chat."""

from __future__ import annotations

import logging
import secrets
from urllib.parse import urlsplit

from pydantic import SecretStr

from bot import bootstrap
from bot.settings import Settings
from bot.sign_in import Role

log = logging.getLogger(__name__)

# Who the first-run link signs in: a moderator of this team.
LOCAL_TEAM, LOCAL_OPERATOR = "local", "operator"


def with_web_secret(settings: Settings) -> Settings:
    """The settings, with a random IMAGINE_WEB_SECRET for this process when none is set."""
    if settings.imagine_web_secret is not None:
        return settings
    log.warning(
        "IMAGINE_WEB_SECRET is not set: dashboard links are signed with a random secret for this process "
        "only, so links and sessions stop working when it restarts (set IMAGINE_WEB_SECRET to keep them)"
    )
    return settings.model_copy(update={"imagine_web_secret": SecretStr(secrets.token_hex(32))})


def invitation(runtime: bootstrap.Runtime) -> str:
    """What to print once the server is up: the operator's one-time link, on IMAGINE_PUBLIC_URL
    or else this machine's own address and the port bound."""
    link = urlsplit(bootstrap.sign_in(runtime).link(LOCAL_TEAM, LOCAL_OPERATOR, Role.MODERATOR))
    base = (runtime.settings.imagine_public_url or f"http://127.0.0.1:{runtime.http_port}").rstrip("/")
    return (
        "\nNo chat platform is configured: the web dashboard is your way in. Open this one-time link\n"
        f'(valid 10 minutes) to sign in as a moderator of team "{LOCAL_TEAM}":\n\n'
        f"  {base}{link.path}\n\n"
        f"For another link: python -m bot dashboard-link --team {LOCAL_TEAM} --user {LOCAL_OPERATOR} --moderator\n"
        "(it needs the same IMAGINE_WEB_SECRET as this process)\n"
    )
