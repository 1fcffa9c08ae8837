-- Image bytes stored once per distinct content: images rows name theirs by sha256.
-- The digest is recomputed from the bytes, never taken from the old row.

CREATE TABLE blobs (sha256 TEXT PRIMARY KEY, data BYTEA NOT NULL);

INSERT INTO blobs (sha256, data) SELECT encode(sha256(data), 'hex'), data FROM images
           ON CONFLICT DO NOTHING;

UPDATE images SET sha256 = encode(sha256(data), 'hex');

ALTER TABLE images DROP COLUMN data;

ALTER TABLE images ADD FOREIGN KEY (sha256) REFERENCES blobs(sha256);
