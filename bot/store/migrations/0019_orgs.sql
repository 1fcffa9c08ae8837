-- Organisations: Slack workspaces and Discord servers that share one team key, so their
-- budgets, quotas, ledger and usage are one. A linked team's requests are made under its
-- organisation's key (its home team's id: the home keeps its budgets and history). An
-- unlinked team has no row and keeps its own id. Unlinking deletes the row only: ledger
-- rows written while linked stay under the organisation's key.

CREATE TABLE team_links (
    platform TEXT NOT NULL,           -- slack | discord
    team TEXT NOT NULL,               -- the Slack team id or Discord guild id
    org TEXT NOT NULL,                -- the organisation's key (the home team's id)
    linked_by TEXT NOT NULL,          -- who linked it (a chat user id, or "cli")
    linked_at {float} NOT NULL,
    PRIMARY KEY (platform, team)
);

CREATE INDEX team_links_org ON team_links (org);

-- One-time codes of /imagine-link, kept as their SHA-256 only (a leaked table links nothing).
-- Taking one deletes it, so a code works once; expired ones are pruned as codes are made.
CREATE TABLE link_codes (
    code_hash TEXT PRIMARY KEY,
    platform TEXT NOT NULL,           -- where it was made: it completes on the other platform
    team TEXT NOT NULL,
    "user" TEXT NOT NULL,
    channel TEXT NOT NULL,            -- where its maker hears that the link is made
    expires_at {float} NOT NULL
);
