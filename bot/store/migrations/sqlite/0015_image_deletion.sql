-- Deleting an image really deletes its bytes. An image that edits still name (their
-- parent) stays as a row without bytes (a tombstone: deleted_at set, sha256 NULL), so
-- the thread's lineage and its costs still add up; the blob goes once no image needs it.
-- SQLite cannot drop a column's NOT NULL in place: sha256 is moved to a new, nullable
-- column (the table is referenced by jobs, threads and itself, so it is not rebuilt).

ALTER TABLE images ADD COLUMN deleted_at REAL;

ALTER TABLE images RENAME COLUMN sha256 TO sha256_before_0015;

ALTER TABLE images ADD COLUMN sha256 TEXT;

UPDATE images SET sha256 = sha256_before_0015;

ALTER TABLE images DROP COLUMN sha256_before_0015;

-- Whether another image still needs a blob; a thread's edits; what points at an image.
CREATE INDEX images_sha256 ON images (sha256);

CREATE INDEX images_parent ON images (parent_image_id);

CREATE INDEX threads_image ON threads (image_id);

CREATE INDEX jobs_result_image ON jobs (result_image_id);
