-- [Ask a moderator] on a budget refusal: the refused request, kept until a moderator
-- answers it or it expires. A request offered or pending holds no money: only the job an
-- approval runs takes a hold. The state changes by conditional UPDATEs only
-- (offered -> pending -> approved | denied | expired), so an approval is given once.

CREATE TABLE approvals (
    token TEXT PRIMARY KEY,
    team TEXT NOT NULL,
    platform TEXT NOT NULL,
    channel TEXT NOT NULL,
    "user" TEXT NOT NULL,             -- who asked for the image
    request {json_column} NOT NULL,   -- the refused request, as bot.confirmations.request_json
    estimate_micros {bigint} NOT NULL,
    budget_state TEXT NOT NULL,       -- the refusal's words about the budget
    state TEXT NOT NULL,              -- offered | pending | approved | denied | expired
    answered_by TEXT,                 -- the moderator who approved or denied it
    created_at {float} NOT NULL,
    asked_at {float},
    answered_at {float},
    expires_at {float} NOT NULL
);

-- The expiry sweep reads what is due, by state.
CREATE INDEX approvals_due ON approvals (state, expires_at);

-- An approved overage's rows name the moderator who approved it (NULL for every other row).
ALTER TABLE ledger ADD COLUMN approved_by TEXT;
