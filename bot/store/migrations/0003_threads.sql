-- Which bot image a chat thread is about, so a reply there edits it
-- without scanning the platform's message history.

CREATE TABLE threads (
    platform TEXT NOT NULL,
    team TEXT NOT NULL,
    channel TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    image_id {bigint} NOT NULL REFERENCES images(id),
    updated_at {float} NOT NULL,
    PRIMARY KEY (platform, team, channel, thread_id)
);
