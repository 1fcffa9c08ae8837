-- Requests waiting for [Run] / [Use Flash]; in the database so the
-- buttons still work after a restart.

CREATE TABLE confirmations (
    token TEXT PRIMARY KEY,
    team TEXT NOT NULL,
    "user" TEXT NOT NULL,
    request {json_column} NOT NULL,
    expires_at {float} NOT NULL
);
