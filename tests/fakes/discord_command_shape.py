"""What Discord refuses when a bot syncs its commands (PUT .../commands), option by option.

From Discord's docs (Application Commands: option types, "Subcommands and Subcommand
Groups"): a command's options are either all SUB_COMMAND / SUB_COMMAND_GROUP or none of
them; a group holds only subcommands; a subcommand holds only plain options; required
options come before optional ones; min_value / max_value belong to INTEGER and NUMBER,
choices to STRING, INTEGER and NUMBER, and a choice's value has its option's type."""

from __future__ import annotations

import re

from tests.fakes.discord_model import _form_error

SUB_COMMAND, SUB_COMMAND_GROUP, STRING, INTEGER, NUMBER = 1, 2, 3, 4, 10
NESTING = (SUB_COMMAND, SUB_COMMAND_GROUP)
CHOICE_TYPES = {STRING: (str,), INTEGER: (int,), NUMBER: (int, float)}


def check_options(path: list, options: list[dict], *, inside: int | None = None) -> None:
    """Raise Discord's 400 for the first option Discord would refuse; `inside` is the
    type of the subcommand or group holding `options` (None at the top of a command)."""
    if len(options) > 25:
        raise _form_error(path, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    nesting = [o.get("type") in NESTING for o in options]
    if any(nesting) and not all(nesting):
        raise _form_error(path, "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID", "Options mix subcommands and values.")
    allowed = {None: None, SUB_COMMAND_GROUP: {SUB_COMMAND}, SUB_COMMAND: set(range(3, 12))}[inside]
    seen_optional = False
    for n, o in enumerate(options):
        where, kind = [*path, n], o.get("type")
        if allowed is not None and kind not in allowed:
            raise _form_error([*where, "type"], "APPLICATION_COMMAND_OPTION_TYPE_INVALID", "Option type is invalid.")
        if not re.fullmatch(r"[-_\w]{1,32}", o.get("name") or "") or o["name"] != o["name"].lower():
            raise _form_error([*where, "name"], "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
        if not 1 <= len(o.get("description") or "") <= 100:
            raise _form_error([*where, "description"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        if kind in NESTING:
            if "required" in o and o["required"]:
                raise _form_error([*where, "required"], "BASE_TYPE_BAD_VALUE", "A subcommand cannot be required.")
            check_options([*where, "options"], o.get("options") or [], inside=kind)
            continue
        if o.get("required") and seen_optional:
            raise _form_error(where, "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID", "Required options come first.")
        seen_optional = seen_optional or not o.get("required")
        _check_values(where, o)


def _check_values(where: list, o: dict) -> None:
    kind = o.get("type")
    for bound in ("min_value", "max_value"):
        if bound in o and (kind not in (INTEGER, NUMBER) or not isinstance(o[bound], (int, float))):
            raise _form_error([*where, bound], "BASE_TYPE_BAD_VALUE", f"{bound} is for INTEGER and NUMBER options.")
    if "min_value" in o and "max_value" in o and o["min_value"] > o["max_value"]:
        raise _form_error([*where, "min_value"], "BASE_TYPE_BAD_VALUE", "min_value is above max_value.")
    for n, choice in enumerate(o.get("choices") or []):
        types = CHOICE_TYPES.get(kind)
        value = choice.get("value")
        if types is None or isinstance(value, bool) or not isinstance(value, types):
            raise _form_error([*where, "choices", n, "value"], "BASE_TYPE_BAD_VALUE", "The choice has the wrong type.")
