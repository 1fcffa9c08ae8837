-- Provider calls in the last minute, per route and model: one rate limit for every process.

CREATE TABLE rate_slots (key TEXT NOT NULL, taken_at {float} NOT NULL);

CREATE INDEX rate_slots_key ON rate_slots (key, taken_at);
