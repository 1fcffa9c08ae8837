-- Image bytes stored once per distinct content: images rows name theirs by sha256.
-- The digest is recomputed from the bytes, never taken from the old row.

CREATE TABLE blobs (sha256 TEXT PRIMARY KEY, data BLOB NOT NULL);

INSERT OR IGNORE INTO blobs (sha256, data) SELECT sha256_hex(data), data FROM images;

UPDATE images SET sha256 = sha256_hex(data);

ALTER TABLE images DROP COLUMN data;
