-- One-time dashboard sign-in links already used. The link itself is signed (bot/sign_in.py);
-- inserting its id here is the claim, so a replay is refused in every process.
-- Rows are pruned once the link has expired anyway.

CREATE TABLE sign_in_links (
    link_id TEXT PRIMARY KEY,
    team TEXT NOT NULL,
    "user" TEXT NOT NULL,
    used_at {float} NOT NULL,
    expires_at {float} NOT NULL
);

CREATE INDEX sign_in_links_expiry ON sign_in_links (expires_at);
