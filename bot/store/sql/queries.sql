-- Every statement the store runs, written once for SQLite and PostgreSQL.
--
-- `-- name: x` starts a statement, `-- fragment: x` a piece other statements
-- use as {x} (or {x:a.b}, whose parts replace $1 and $2). sqlite.sql and
-- postgres.sql define the fragments that differ (row locks, JSON access, lists)
-- and may override a whole statement. Parameters are :named, in both.
-- "user" is quoted: a reserved word in PostgreSQL, a plain name in SQLite.

-- fragment: held_micros
COALESCE((SELECT h.amount_micros FROM holds h WHERE h.job_id = jobs.id), 0) AS held_micros

-- fragment: images_with_data
SELECT images.*, blobs.data FROM images JOIN blobs ON blobs.sha256 = images.sha256

-- fragment: not_a_stand_in
{json:result.fallback_from} IS NULL AND {json:result.stale} IS NULL


-- ---- jobs: submit ---------------------------------------------------------

-- name: job_for_key
SELECT id FROM jobs WHERE idempotency_key = :key AND created_at >= :since

-- name: job_by_key
SELECT id FROM jobs WHERE idempotency_key = :key

-- name: free_old_key
UPDATE jobs SET idempotency_key = idempotency_key || ':' || id
WHERE idempotency_key = :key AND created_at < :before

-- Never an image deleted or pruned meanwhile (a copy made just before the pruner took its
-- image keeps its cache key, but serves nothing).
-- name: cache_hit
SELECT result_image_id, result FROM jobs WHERE cache_key = :cache_key AND team = :team
AND state = 'succeeded' AND finished_at >= :since AND {not_a_stand_in}
AND EXISTS (SELECT 1 FROM images WHERE images.id = jobs.result_image_id AND images.deleted_at IS NULL)
ORDER BY id DESC LIMIT 1

-- name: served_round
SELECT value FROM queue_meta WHERE key = 'served_round'

-- name: team_last_round
SELECT MAX(round) FROM jobs WHERE team = :team AND state = 'queued' AND lane = :lane

-- name: insert_job
INSERT INTO jobs (team, channel, "user", platform, kind, request, delivery, idempotency_key, cache_key,
    lane, state, round, max_attempts, available_at, announce_by, result_image_id, result,
    created_at, updated_at, finished_at)
VALUES (:team, :channel, :user, :platform, :kind, :request, :delivery, :idempotency_key, :cache_key,
    :lane, :state, :round, :max_attempts, :now, :announce_by, :result_image_id, :result,
    :now, :now, :finished_at)
ON CONFLICT DO NOTHING RETURNING id

-- A queued job's place in its lane (1 = next), the order lease_pick takes them in;
-- $1 names the queued job's row. Written once: `position` and the queue page use it.
-- The bound on round alone lets the count read only the jobs ahead from the index
-- (lane, state, round, id); the OR by itself made it read every queued job of the lane.
-- fragment: queue_position
1 + (SELECT COUNT(*) FROM jobs o WHERE o.state = 'queued' AND o.lane = $1.lane AND o.round <= $1.round
     AND (o.round < $1.round OR o.id < $1.id))

-- name: position
SELECT {queue_position:j} FROM jobs j WHERE j.id = :id AND j.state = 'queued'

-- name: quota_user_concurrent_jobs
SELECT COUNT(*) FROM jobs WHERE team = :team AND "user" = :user AND state IN ('queued', 'running')

-- name: quota_team_queued_jobs
SELECT COUNT(*) FROM jobs WHERE team = :team AND state = 'queued'

-- name: quota_user_images_per_day
SELECT COUNT(*) FROM jobs WHERE team = :team AND "user" = :user AND created_at >= :day_start
AND state NOT IN ('failed', 'dead', 'cancelled')


-- ---- jobs: leasing and finishing ----------------------------------------

-- name: reclaim_pick
SELECT id FROM jobs WHERE state = 'running' AND lease_until < :now {skip_locked}

-- name: reclaim_dead
UPDATE jobs SET state = 'dead', error_class = :error_class, worker_id = NULL, lease_until = NULL,
    error_detail = 'the worker stopped responding (lease expired) on every attempt',
    finished_at = :now, updated_at = :now
WHERE id {in:ids} AND attempt >= max_attempts RETURNING *

-- name: reclaim_requeue
UPDATE jobs SET state = 'queued', worker_id = NULL, lease_until = NULL, available_at = :now, updated_at = :now
WHERE id {in:ids} AND state = 'running'

-- name: unannounced_pick
SELECT id FROM jobs WHERE state = 'queued' AND announce_by <= :now {skip_locked}

-- name: relaxed_pick
SELECT id FROM jobs WHERE state = 'queued' AND lane <> 'standard' {skip_locked}

-- name: cancel_jobs
UPDATE jobs SET state = 'cancelled', error_class = :error_class, error_detail = :detail,
    finished_at = :now, updated_at = :now
WHERE id {in:ids} RETURNING *

-- The next :limit jobs in fair order (Priority first, then round, then id): read in the
-- order of the jobs_runnable index, so the queue's length does not matter.
-- name: lease_pick
SELECT id, lane FROM jobs {use_index:jobs_runnable} WHERE state = 'queued'
AND (lane IN ('standard', 'priority') OR (:flex AND lane = 'flex'))
AND available_at <= :now AND announce_by IS NULL AND (CAST(:only AS BIGINT) IS NULL OR id = :only)
ORDER BY lane = 'priority' DESC, round, id LIMIT :limit {skip_locked}

-- Each job goes to its own taker (:workers maps a job's id to its worker's).
-- name: lease_take
UPDATE jobs SET state = 'running', attempt = attempt + 1, worker_id = {json_key:workers.id},
    lease_until = :until, started_at = COALESCE(started_at, :now), updated_at = :now
WHERE id {in:ids} RETURNING *, {held_micros},
    EXISTS (SELECT 1 FROM images i WHERE i.job_id = jobs.id AND i.role = 'input') AS has_inputs

-- The "started" delivery of each job just leased, one per attempt (its key says which;
-- no colon before a word in a literal, where it would read as a parameter).
-- name: insert_started
INSERT INTO outbox (key, job_id, platform, kind, payload, available_at, created_at)
SELECT 'job:' || id || ':' || 'started' || ':' || attempt, id, platform, 'started', {json_pair:attempt.attempt}, :now, :now
FROM jobs WHERE id {in:ids} ORDER BY id
ON CONFLICT DO NOTHING

-- A lease that does not move the served round forward skips the write, so
-- leases don't all queue on this one row.
-- name: advance_served_round
UPDATE queue_meta SET value = :round WHERE key = 'served_round' AND value < :round

-- name: extend_lease
UPDATE jobs SET lease_until = :until, updated_at = :now
WHERE id = :id AND state = 'running' AND worker_id = :worker AND attempt = :attempt

-- name: take_back
SELECT * FROM jobs WHERE id = :id AND state = 'running' AND worker_id = :worker AND attempt = :attempt
{lock_row}

-- name: job_row
SELECT * FROM jobs WHERE id = :id

-- name: succeed_job
UPDATE jobs SET state = 'succeeded', result_image_id = :image_id, result = :result, lease_until = NULL,
    finished_at = :now, updated_at = :now, error_class = NULL, error_detail = NULL
WHERE id = :id

-- name: fail_job
UPDATE jobs SET state = :state, error_class = :error_class, error_detail = :detail, result = :result,
    attempt = attempt - :refund, worker_id = NULL, lease_until = NULL, available_at = :available_at, finished_at = :finished_at,
    updated_at = :now
WHERE id = :id

-- name: cancel_queued
UPDATE jobs SET state = 'cancelled', finished_at = :now, updated_at = :now
WHERE id = :id AND state = 'queued' RETURNING *

-- name: relane_job
UPDATE jobs SET lane = :lane, request = {set_json:request.lane.lane}, state = 'queued',
    worker_id = NULL, lease_until = NULL, available_at = :now, updated_at = :now
WHERE id = :id

-- name: stale_hit
SELECT id, result, result_image_id, finished_at FROM jobs
WHERE cache_key = :cache_key AND team = :team AND state = 'succeeded' AND {not_a_stand_in}
ORDER BY id DESC LIMIT 1

-- name: get_job
SELECT *, {held_micros} FROM jobs WHERE id = :id

-- name: jobs_by_ids
SELECT *, {held_micros} FROM jobs WHERE id {in:ids}

-- name: error_counts
SELECT error_class, COUNT(*) AS n FROM jobs WHERE error_class IS NOT NULL AND updated_at >= :since
GROUP BY error_class ORDER BY n DESC

-- name: counts_by_state
SELECT state, COUNT(*) AS n FROM jobs GROUP BY state


-- ---- images ---------------------------------------------------------------

-- name: insert_blob
INSERT INTO blobs (sha256, data) VALUES (:sha256, :data) ON CONFLICT DO NOTHING

-- name: insert_image
INSERT INTO images (job_id, role, parent_image_id, mime, width, height, size_bytes, sha256, created_at)
VALUES (:job_id, :role, :parent, :mime, :width, :height, :size_bytes, :sha256, :now) RETURNING id

-- name: image
{images_with_data} WHERE images.id = :id

-- name: job_inputs
{images_with_data} WHERE images.job_id = :job_id AND images.role = 'input' ORDER BY images.id


-- ---- Batch lane -----------------------------------------------------------

-- The longest-waiting relaxed job picks the model; jobs another process is
-- batching right now are skipped, never shared.
-- name: batch_first_model
SELECT {json:request.model_id} AS model_id FROM jobs
WHERE state = 'queued' AND lane = 'batch' AND available_at <= :now AND announce_by IS NULL
ORDER BY id LIMIT 1 {skip_locked}

-- A job's input images for the Batch lane's size limit: how many and their
-- bytes, the image an edit changes (named in its request) included.
-- name: batch_candidates
SELECT id, {json:request.prompt} AS prompt,
    (SELECT COUNT(*) FROM images i WHERE i.job_id = jobs.id AND i.role = 'input')
      + (CASE WHEN {json:request.parent_image_id} IS NULL THEN 0 ELSE 1 END) AS images,
    CAST((SELECT COALESCE(SUM(i.size_bytes), 0) FROM images i WHERE i.job_id = jobs.id AND i.role = 'input')
      + COALESCE((SELECT p.size_bytes FROM images p
                  WHERE p.id = CAST({json:request.parent_image_id} AS BIGINT)), 0) AS BIGINT) AS image_bytes
FROM jobs
WHERE state = 'queued' AND lane = 'batch' AND available_at <= :now AND announce_by IS NULL
AND {json:request.model_id} = :model_id
ORDER BY id LIMIT :limit {skip_locked_jobs}

-- name: insert_batch
INSERT INTO batches (model_id, state, job_ids, created_at, updated_at, next_poll_at)
VALUES (:model_id, 'creating', :job_ids, :now, :now, :now) RETURNING id

-- No lease expiry: a batch's jobs wait on the batch, however long Google takes.
-- name: batch_take_jobs
UPDATE jobs SET state = 'running', attempt = attempt + 1, worker_id = :worker, batch_id = :batch_id,
    lease_until = NULL, started_at = COALESCE(started_at, :now), updated_at = :now
WHERE id {in:ids} RETURNING *, {held_micros}

-- name: batch_to_split
SELECT model_id, job_ids FROM batches WHERE id = :id AND state = 'creating' {lock_row}

-- name: batch_move_jobs
UPDATE jobs SET worker_id = :worker, batch_id = :batch_id, updated_at = :now
WHERE batch_id = :old_batch_id AND worker_id = :old_worker AND state = 'running' AND id {in:ids}
RETURNING *, {held_micros}

-- name: batch_set_job_ids
UPDATE batches SET job_ids = :job_ids, updated_at = :now WHERE id = :id

-- name: batch_submitted
UPDATE batches SET state = 'submitted', remote_name = :remote_name, updated_at = :now, next_poll_at = :poll_at
WHERE id = :id AND (state = 'creating' OR (state = 'submitted' AND remote_name = :remote_name))
RETURNING id

-- The batch's jobs still waiting on it (not yet finished, not retried elsewhere).
-- name: batch_jobs
SELECT *, {held_micros} FROM jobs WHERE batch_id = :batch_id AND state = 'running' AND worker_id = :worker
ORDER BY id

-- name: due_batches_pick
SELECT id FROM batches
WHERE next_poll_at <= :now AND (state = 'submitted' OR (state = 'creating' AND updated_at <= :stale_before))
{skip_locked}

-- name: due_batches_push
UPDATE batches SET next_poll_at = :next_poll_at WHERE id {in:ids} RETURNING *

-- name: close_batch
UPDATE batches SET state = 'closed', remote_state = :remote_state, updated_at = :now WHERE id = :id


-- ---- money: holds, ledger, budgets ----------------------------------------

-- name: insert_hold
INSERT INTO holds (job_id, team, channel, "user", amount_micros, price_version, default_limit_micros,
    default_period, created_at)
VALUES (:job_id, :team, :channel, :user, :amount_micros, :price_version, :default_limit_micros,
    :default_period, :now)

-- (job, entry, attempt, hedge) is unique, so the same call reported twice (a
-- late worker, a retried write) is charged once.
-- name: insert_ledger
INSERT INTO ledger (job_id, entry, attempt, team, channel, "user", model, size, lane, prompt_tokens,
    output_tokens, image_tokens, cost_micros, status, price_version, created_at, hedge, approved_by)
VALUES (:job_id, :entry, :attempt, :team, :channel, :user, :model, :size, :lane, :prompt_tokens,
    :output_tokens, :image_tokens, :cost_micros, :status, :price_version, :now, :hedge, :approved_by)
ON CONFLICT DO NOTHING

-- name: hold_price_version
SELECT price_version FROM holds WHERE job_id = :job_id

-- name: hold_default_budget
SELECT default_limit_micros, default_period FROM holds WHERE job_id = :job_id

-- name: release_hold
DELETE FROM holds WHERE job_id = :job_id RETURNING amount_micros, price_version

-- name: job_charged
SELECT CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) FROM ledger WHERE job_id = :job_id AND entry = 'settlement'

-- name: applicable_budgets
SELECT * FROM budgets WHERE team = :team AND ((scope = 'team' AND scope_id = '')
    OR (scope = 'channel' AND scope_id = :channel) OR (scope = 'user' AND scope_id = :user))
ORDER BY CASE scope WHEN 'team' THEN 0 WHEN 'channel' THEN 1 ELSE 2 END

-- One statement, so one snapshot: a job finishing meanwhile (its charge added
-- and its hold removed in one commit) is seen whole or not at all. Two reads
-- could see neither and admit over the budget.
-- name: budget_usage
SELECT (SELECT CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) FROM ledger
        WHERE team = :team AND {in_scope} AND entry = 'settlement' AND created_at >= :since) AS spent,
       (SELECT CAST(COALESCE(SUM(amount_micros), 0) AS BIGINT) FROM holds
        WHERE team = :team AND {in_scope}) AS held

-- The rows of one budget's scope: the whole team, one channel or one user.
-- fragment: in_scope
(:scope = 'team' OR (:scope = 'channel' AND channel = :scope_id) OR (:scope = 'user' AND "user" = :scope_id))

-- name: upsert_budget
INSERT INTO budgets (team, scope, scope_id, limit_micros, period, soft_threshold, updated_by, updated_at)
VALUES (:team, :scope, :scope_id, :limit_micros, :period, :soft_threshold, :updated_by, :now)
ON CONFLICT (team, scope, scope_id) DO UPDATE SET limit_micros = excluded.limit_micros,
    period = excluded.period, soft_threshold = excluded.soft_threshold,
    updated_by = excluded.updated_by, updated_at = excluded.updated_at

-- name: delete_budget
DELETE FROM budgets WHERE team = :team AND scope = :scope AND scope_id = :scope_id

-- name: team_budgets
SELECT * FROM budgets WHERE team = :team ORDER BY scope, scope_id

-- name: spent
SELECT CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) FROM ledger
WHERE team = :team AND (CAST(:user AS TEXT) IS NULL OR "user" = :user)
AND entry = 'settlement' AND created_at >= :since

-- name: ledger
SELECT * FROM ledger WHERE (CAST(:team AS TEXT) IS NULL OR team = :team)
AND (CAST(:since AS DOUBLE PRECISION) IS NULL OR created_at >= :since)
AND (CAST(:entry AS TEXT) IS NULL OR entry = :entry) ORDER BY id

-- One team's rows of one kind since a time (`usage` lists the settlements), read from the
-- index ledger_team_spend (team, entry, created_at, ...): the rows it returns, not the whole
-- ledger, which `ledger`'s optional filters make SQLite read.
-- name: team_ledger_entry
SELECT * FROM ledger WHERE team = :team AND entry = :entry AND created_at >= :since ORDER BY id

-- name: insert_moderation
INSERT INTO moderation_log (team, channel, "user", reason, prompt, created_at)
VALUES (:team, :channel, :user, :reason, :prompt, :now)

-- name: moderation_log
SELECT * FROM moderation_log WHERE team = :team ORDER BY id


-- ---- outbox ---------------------------------------------------------------

-- Ignored on a duplicate key: a job finished twice (a retry racing a late
-- worker) still posts once.
-- name: insert_delivery
INSERT INTO outbox (key, job_id, platform, kind, payload, available_at, created_at)
VALUES (:key, :job_id, :platform, :kind, :payload, :now, :now)
ON CONFLICT DO NOTHING RETURNING id

-- name: claim_pick
SELECT id FROM outbox WHERE state = 'pending' AND platform {in:platforms} AND available_at <= :now
ORDER BY id LIMIT :limit {skip_locked}

-- Claiming pushes available_at forward: a dispatcher that dies mid-send
-- leaves the row to be picked up again after the lease.
-- name: claim_take
UPDATE outbox SET available_at = :until, attempts = attempts + 1 WHERE id {in:ids} RETURNING *

-- name: outbox_pending
SELECT COUNT(*) FROM outbox WHERE state = 'pending'

-- name: mark_delivered
UPDATE outbox SET state = 'delivered', delivered_at = :now WHERE id = :id

-- name: mark_delivered_many
UPDATE outbox SET state = 'delivered', delivered_at = :now WHERE id {in:ids}

-- name: retry_delivery
UPDATE outbox SET last_error = :error, available_at = :retry_at,
    state = CASE WHEN attempts >= :max_attempts THEN 'failed' ELSE 'pending' END
WHERE id = :id


-- ---- chat context: deliveries' context, threads, confirmations, rate slots --

-- name: delivery_context
SELECT delivery, state FROM jobs WHERE id = :id {lock_row}

-- An announced job waits for this before it may be leased (or is cancelled).
-- name: set_delivery_context
UPDATE jobs SET delivery = :delivery, announce_by = NULL WHERE id = :id

-- name: upsert_thread
INSERT INTO threads (platform, team, channel, thread_id, image_id, updated_at)
VALUES (:platform, :team, :channel, :thread_id, :image_id, :now)
ON CONFLICT (platform, team, channel, thread_id)
DO UPDATE SET image_id = excluded.image_id, updated_at = excluded.updated_at

-- name: thread_image
SELECT image_id FROM threads WHERE platform = :platform AND team = :team AND channel = :channel
AND thread_id = :thread_id

-- [Undo]: only while the thread still shows the image undone, so of two presses one moves it.
-- name: swap_thread_image
UPDATE threads SET image_id = :image_id, updated_at = :now
WHERE platform = :platform AND team = :team AND channel = :channel AND thread_id = :thread_id
AND image_id = :expected

-- name: prune_confirmations
DELETE FROM confirmations WHERE expires_at < :now

-- name: insert_confirmation
INSERT INTO confirmations (token, team, "user", request, expires_at) VALUES (:token, :team, :user, :request, :expires_at)

-- Deleting is the claim: of two clicks at once, exactly one gets the request.
-- name: take_confirmation
DELETE FROM confirmations WHERE token = :token AND team = :team AND "user" = :user AND expires_at >= :now
RETURNING request

-- name: confirmation_held
SELECT 1 FROM confirmations WHERE token = :token AND expires_at >= :now

-- name: prune_rate_slots
DELETE FROM rate_slots WHERE key = :key AND taken_at <= :before

-- name: rate_slots
SELECT COUNT(*) AS n, MIN(taken_at) AS oldest FROM rate_slots WHERE key = :key

-- name: take_rate_slot
INSERT INTO rate_slots (key, taken_at) VALUES (:key, :now)


-- ---- web dashboard --------------------------------------------------------

-- name: prune_sign_in_links
DELETE FROM sign_in_links WHERE expires_at < :now

-- The primary key is the claim: of two opens at once (any processes), exactly one inserts.
-- name: use_sign_in_link
INSERT INTO sign_in_links (link_id, team, "user", used_at, expires_at)
VALUES (:link_id, :team, :user, :now, :expires_at)
ON CONFLICT DO NOTHING

-- Settlements per UTC day and model since :since (a day is its midnight, in epoch seconds).
-- name: daily_spend_by_model
SELECT {utc_day} AS day, model, CAST(SUM(cost_micros) AS BIGINT) AS micros FROM ledger
WHERE team = :team AND entry = 'settlement' AND created_at >= :since
GROUP BY {utc_day}, model ORDER BY day, model

-- The team's biggest spenders since :since, by user (or channel: the statement below).
-- name: spend_by_user
SELECT "user" AS name, CAST(SUM(cost_micros) AS BIGINT) AS micros FROM ledger
WHERE team = :team AND entry = 'settlement' AND created_at >= :since
GROUP BY "user" ORDER BY micros DESC, name LIMIT :limit

-- name: spend_by_channel
SELECT channel AS name, CAST(SUM(cost_micros) AS BIGINT) AS micros FROM ledger
WHERE team = :team AND entry = 'settlement' AND created_at >= :since
GROUP BY channel ORDER BY micros DESC, name LIMIT :limit


-- ---- web dashboard: the queue page ------------------------------------------

-- The team's jobs waiting or running: running first (oldest start first), then queued
-- by position; a queued job's position as `position` gives it, its hold as held_micros.
-- name: team_queue
SELECT jobs.*, {held_micros},
    CASE WHEN jobs.state = 'queued' THEN {queue_position:jobs} END AS queue_position
FROM jobs WHERE jobs.team = :team AND jobs.state IN ('running', 'queued')
ORDER BY jobs.state = 'running' DESC, queue_position, CASE WHEN jobs.state = 'running' THEN jobs.started_at END,
    jobs.id
LIMIT :limit
-- ---- web dashboard: ledger and budgets pages ------------------------------

-- A team's ledger rows matching the page's filters (each NULL filter matches all), newest first.
-- name: ledger_filtered
SELECT * FROM ledger WHERE team = :team
AND (CAST(:entry AS TEXT) IS NULL OR entry = :entry)
AND (CAST(:since AS DOUBLE PRECISION) IS NULL OR created_at >= :since)
AND (CAST(:until AS DOUBLE PRECISION) IS NULL OR created_at < :until)
AND (CAST(:user AS TEXT) IS NULL OR "user" = :user)
AND (CAST(:channel AS TEXT) IS NULL OR channel = :channel)
AND (CAST(:model AS TEXT) IS NULL OR model = :model)
AND (CAST(:lane AS TEXT) IS NULL OR lane = :lane)
ORDER BY id DESC LIMIT :limit OFFSET :offset

-- name: budget_row
SELECT * FROM budgets WHERE team = :team AND scope = :scope AND scope_id = :scope_id

-- name: insert_budget_audit
INSERT INTO budget_audit (team, "user", platform, scope, scope_id, old_limit_micros, old_period,
    old_soft_threshold, new_limit_micros, new_period, new_soft_threshold, created_at)
VALUES (:team, :user, :platform, :scope, :scope_id, :old_limit_micros, :old_period,
    :old_soft_threshold, :new_limit_micros, :new_period, :new_soft_threshold, :now)

-- name: budget_audit
SELECT * FROM budget_audit WHERE team = :team ORDER BY id DESC LIMIT :limit
-- ---- web dashboard: the gallery, and deleting an image --------------------

-- A result image with its job: who asked for what, and what the job was charged
-- (its settlements, every attempt and hedge, as the ledger keeps them).
-- fragment: gallery_row
SELECT images.id, images.job_id, images.parent_image_id, images.mime, images.width, images.height,
    images.created_at, images.deleted_at, jobs.team, jobs.channel, jobs."user", jobs.platform, jobs.kind,
    jobs.request,
    CAST((SELECT COALESCE(SUM(l.cost_micros), 0) FROM ledger l
          WHERE l.job_id = jobs.id AND l.entry = 'settlement') AS BIGINT) AS cost_micros
FROM images JOIN jobs ON jobs.id = images.job_id

-- name: gallery_page
{gallery_row} WHERE jobs.team = :team AND images.role = 'output' AND images.deleted_at IS NULL
ORDER BY images.id DESC LIMIT :limit OFFSET :offset

-- name: gallery_user_page
{gallery_row} WHERE jobs.team IN (:team, :also) AND jobs."user" = :user AND images.role = 'output'
AND images.deleted_at IS NULL
ORDER BY images.id DESC LIMIT :limit

-- name: gallery_count
SELECT COUNT(*) FROM images JOIN jobs ON jobs.id = images.job_id
WHERE jobs.team = :team AND images.role = 'output' AND images.deleted_at IS NULL

-- name: gallery_image
{gallery_row} WHERE images.id = :id AND jobs.team IN (:team, :also) AND images.role = 'output'

-- An image's thread: up its parents to the root, then the root and every edit below it
-- (a parent is always older than its edits, so the walk ends).
-- name: gallery_thread
WITH RECURSIVE lineage_up (id, parent_image_id) AS (
    SELECT id, parent_image_id FROM images WHERE id = :id
    UNION ALL
    SELECT i.id, i.parent_image_id FROM images i JOIN lineage_up ON i.id = lineage_up.parent_image_id
), lineage_down (id) AS (
    SELECT id FROM lineage_up WHERE parent_image_id IS NULL
    UNION ALL
    SELECT i.id FROM images i JOIN lineage_down ON i.parent_image_id = lineage_down.id
)
{gallery_row} WHERE images.id IN (SELECT id FROM lineage_down) AND jobs.team IN (:team, :also)
AND images.role = 'output'
ORDER BY images.id

-- The teams of an image's chain, up its parents to the root: more than one when an edit was
-- made across a link (a team editing what it made before it joined an organisation).
-- name: chain_teams
WITH RECURSIVE lineage_up (id, parent_image_id, job_id) AS (
    SELECT id, parent_image_id, job_id FROM images WHERE id = :id
    UNION ALL
    SELECT i.id, i.parent_image_id, i.job_id FROM images i JOIN lineage_up ON i.id = lineage_up.parent_image_id
)
SELECT DISTINCT jobs.team FROM lineage_up JOIN jobs ON jobs.id = lineage_up.job_id

-- The image's row is locked first, as the pruner's pick locks it: of a delete and a pruner
-- taking the same image, the second waits here and then finds it gone (exactly one takes it).
-- name: image_to_delete
SELECT images.id, images.sha256 FROM images JOIN jobs ON jobs.id = images.job_id
WHERE images.id = :id AND jobs.team = :team AND images.role = 'output' AND images.deleted_at IS NULL
{lock_image_row}

-- name: unlink_image_threads
DELETE FROM threads WHERE image_id = :id

-- Every job the image answered (its own, and the prompt-cache hits that copied it) leaves
-- the cache: the same prompt makes a new image instead of finding this one for $0.
-- name: uncache_image
UPDATE jobs SET cache_key = NULL WHERE result_image_id = :id AND cache_key IS NOT NULL

-- Edits that name the image as their parent: made, or still to be made (queued, running).
-- name: image_edits
SELECT (SELECT COUNT(*) FROM images WHERE parent_image_id = :id)
    + (SELECT COUNT(*) FROM jobs WHERE team = :team AND state IN ('queued', 'running')
       AND CAST({json:request.parent_image_id} AS BIGINT) = :id)

-- name: tombstone_image
UPDATE images SET sha256 = NULL, deleted_at = :now WHERE id = :id

-- Bytes are stored once per content: they go when no other image (an identical upload,
-- another output) still names them.
-- name: delete_unneeded_blob
DELETE FROM blobs WHERE sha256 = :sha256 AND NOT EXISTS (SELECT 1 FROM images WHERE sha256 = :sha256)
-- ---- overview savings (web dashboard) -------------------------------------

-- What the team's cache hits since :since would have cost: for each job answered from the
-- cache, the charge of the job that made its image (its succeeded call; of a hedged pair,
-- the dearer one, as one image was kept). A cache hit is inserted succeeded and never runs, so
-- its attempt is 0: that plain column narrows the rows (and lets an index find them) before
-- the JSON flag says which they are.
-- name: cache_savings
SELECT CAST(COALESCE(SUM((SELECT MAX(l.cost_micros) FROM ledger l
        WHERE l.job_id = i.job_id AND l.entry = 'settlement' AND l.status = 'succeeded')), 0) AS BIGINT)
FROM jobs c JOIN images i ON i.id = c.result_image_id
WHERE c.team = :team AND c.created_at >= :since AND c.state = 'succeeded' AND c.attempt = 0
AND {json:result.cached} IS NOT NULL

-- What the team was charged on the relaxed lanes (Flex, Batch) since :since, per model and lane.
-- name: relaxed_charges
SELECT model, lane, CAST(SUM(cost_micros) AS BIGINT) AS micros FROM ledger
WHERE team = :team AND entry = 'settlement' AND lane IN ('flex', 'batch') AND created_at >= :since
GROUP BY model, lane ORDER BY model, lane


-- ---- retention: the pruner (bot/retention.py, bot/store/retention.py) -------
-- Each kind is pruned a batch at a time (:limit rows, one transaction). Rows are picked
-- {skip_locked}, so two pruners (any processes) take different rows; every change is
-- guarded by what it changes (deleted_at IS NULL, prompt IS NOT NULL...), so a row is
-- counted once however the pruners interleave.

-- fragment: finished
state IN ('succeeded', 'failed', 'blocked', 'cancelled', 'dead')

-- Result images made before :before, but not one a queued or running edit still needs.
-- name: prune_images_pick
SELECT id, sha256 FROM images WHERE role = 'output' AND deleted_at IS NULL AND created_at < :before
AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.state IN ('queued', 'running')
                AND CAST({json:request.parent_image_id} AS BIGINT) = images.id)
ORDER BY id LIMIT :limit {skip_locked}

-- Input pictures of jobs finished before :before (a Reroll of such a job has them no more).
-- name: prune_inputs_pick
SELECT id, sha256 FROM images WHERE role = 'input' AND deleted_at IS NULL
AND EXISTS (SELECT 1 FROM jobs WHERE jobs.id = images.job_id AND {finished} AND jobs.finished_at < :before)
ORDER BY id LIMIT :limit {skip_locked}

-- Taken before the images change, in one order: of two pruners whose images share bytes,
-- the second waits here, then sees the first's tombstones and deletes the blob.
-- name: prune_lock_blobs
SELECT sha256 FROM blobs WHERE sha256 {in:shas} ORDER BY sha256 {lock_row}

-- name: prune_unlink_threads
DELETE FROM threads WHERE image_id {in:ids}

-- name: prune_uncache
UPDATE jobs SET cache_key = NULL WHERE result_image_id {in:ids} AND cache_key IS NOT NULL

-- As delete_image does: the row stays as a tombstone (its job's money and lineage name it).
-- name: prune_tombstone
UPDATE images SET sha256 = NULL, deleted_at = :now WHERE id {in:ids} AND deleted_at IS NULL

-- name: prune_unneeded_blobs
DELETE FROM blobs WHERE sha256 {in:shas}
AND NOT EXISTS (SELECT 1 FROM images WHERE images.sha256 = blobs.sha256)

-- A finished job's row goes only when nothing needs it: no ledger row names it (money
-- history is never deleted), no hold, and no image of its own but pruned inputs.
-- name: prune_jobs_pick
SELECT id FROM jobs WHERE {finished} AND finished_at < :before
AND NOT EXISTS (SELECT 1 FROM ledger WHERE ledger.job_id = jobs.id)
AND NOT EXISTS (SELECT 1 FROM holds WHERE holds.job_id = jobs.id)
AND NOT EXISTS (SELECT 1 FROM images WHERE images.job_id = jobs.id
                AND (images.role <> 'input' OR images.deleted_at IS NULL))
ORDER BY id LIMIT :limit {skip_locked}

-- name: prune_jobs_outbox
DELETE FROM outbox WHERE job_id {in:ids}

-- name: prune_jobs_inputs
DELETE FROM images WHERE job_id {in:ids} AND role = 'input' AND deleted_at IS NOT NULL

-- name: prune_jobs
DELETE FROM jobs WHERE id {in:ids}

-- name: prune_batches_pick
SELECT id FROM batches WHERE state = 'closed' AND updated_at < :before ORDER BY id LIMIT :limit {skip_locked}

-- name: prune_batches
DELETE FROM batches WHERE id {in:ids}

-- Delivered, or given up on: nothing will send them again.
-- name: prune_outbox_pick
SELECT id FROM outbox WHERE state IN ('delivered', 'failed') AND created_at < :before
ORDER BY id LIMIT :limit {skip_locked}

-- name: prune_outbox
DELETE FROM outbox WHERE id {in:ids}

-- name: retire_confirmations
DELETE FROM confirmations WHERE token IN
    (SELECT token FROM confirmations WHERE expires_at < :before ORDER BY expires_at LIMIT :limit)

-- A claim goes only once its link has expired anyway: a replay is refused by the signature then.
-- name: retire_sign_in_links
DELETE FROM sign_in_links WHERE link_id IN
    (SELECT link_id FROM sign_in_links WHERE expires_at < :before ORDER BY expires_at LIMIT :limit)

-- A key's slots are pruned when it is counted; these are keys no longer counted (a route gone).
-- name: retire_rate_slots
DELETE FROM rate_slots WHERE taken_at < :before

-- A finished job's idempotency key: a retried event or double click is seconds late, not days.
-- name: prune_idempotency_keys
UPDATE jobs SET idempotency_key = NULL WHERE idempotency_key IS NOT NULL AND id IN
    (SELECT id FROM jobs WHERE idempotency_key IS NOT NULL AND {finished} AND finished_at < :before
     ORDER BY id LIMIT :limit)

-- The refusal stays (it is counted); its text goes.
-- name: prune_moderation_text
UPDATE moderation_log SET prompt = NULL WHERE prompt IS NOT NULL AND id IN
    (SELECT id FROM moderation_log WHERE prompt IS NOT NULL AND created_at < :before ORDER BY id LIMIT :limit)

-- name: inputs_pruned
SELECT COUNT(*) FROM images WHERE job_id = :job_id AND role = 'input' AND deleted_at IS NOT NULL

-- name: blob_bytes
SELECT COUNT(*) AS blobs, CAST(COALESCE(SUM(length(data)), 0) AS BIGINT) AS bytes FROM blobs

-- name: database_size
SELECT 0 AS bytes, '' AS detail

-- name: table_sizes
SELECT '' AS name, 0 AS bytes WHERE 1 = 0

-- ---------------------------------------------------------------------------------------------
-- Store health (issue 16, SQLite faults): /healthz's write probe. A server database needs none
-- beyond the write transaction around it; SQLite's override (sqlite.sql) really writes a page.

-- name: write_probe
SELECT 1


-- ---- organisations (team_links, link_codes) --------------------------------------------------

-- name: team_org
SELECT org FROM team_links WHERE platform = :platform AND team = :team

-- name: team_link
SELECT platform, team, org, linked_by, linked_at FROM team_links WHERE platform = :platform AND team = :team

-- name: org_members
SELECT platform, team, org, linked_by, linked_at FROM team_links WHERE org = :org ORDER BY linked_at, platform, team

-- name: all_team_links
SELECT platform, team, org, linked_by, linked_at FROM team_links ORDER BY org, linked_at, platform, team

-- name: insert_team_link
INSERT INTO team_links (platform, team, org, linked_by, linked_at) VALUES (:platform, :team, :org, :by, :now)

-- name: delete_team_link
DELETE FROM team_links WHERE platform = :platform AND team = :team

-- name: prune_link_codes
DELETE FROM link_codes WHERE expires_at <= :now OR (platform = :platform AND team = :team)

-- name: insert_link_code
INSERT INTO link_codes (code_hash, platform, team, "user", channel, expires_at)
VALUES (:code_hash, :platform, :team, :user, :channel, :expires_at)

-- name: live_link_code
SELECT platform, team, "user", channel FROM link_codes WHERE code_hash = :code_hash AND expires_at > :now

-- name: delete_link_code
DELETE FROM link_codes WHERE code_hash = :code_hash

-- ---------------------------------------------------------------------------------------------
-- Approvals ([Ask a moderator] on a budget refusal, bot/approvals.py). Every state change is one
-- conditional UPDATE: of two presses at once (in two processes alike) exactly one changes the row.

-- name: insert_approval
INSERT INTO approvals (token, team, platform, channel, "user", request, estimate_micros, budget_state, state,
    created_at, expires_at)
VALUES (:token, :team, :platform, :channel, :user, :request, :estimate_micros, :budget_state, 'offered',
    :now, :expires_at)

-- name: approval
SELECT * FROM approvals WHERE token = :token

-- name: approval_ask
UPDATE approvals SET state = 'pending', asked_at = :now, expires_at = :expires_at
WHERE token = :token AND "user" = :user AND state = 'offered' AND expires_at > :now RETURNING *

-- The approval is claimed in the transaction that inserts its job (bot/store/ledger.py).
-- name: approval_approve
UPDATE approvals SET state = 'approved', answered_by = :by, answered_at = :now
WHERE token = :token AND state = 'pending' AND expires_at > :now RETURNING token, request

-- name: approval_deny
UPDATE approvals SET state = 'denied', answered_by = :by, answered_at = :now
WHERE token = :token AND state = 'pending' AND expires_at > :now RETURNING *

-- name: approvals_expire
UPDATE approvals SET state = 'expired', answered_at = :now
WHERE state = 'pending' AND expires_at <= :now RETURNING *

-- The alert could not be posted: the request goes back to offered, to be asked again.
-- name: approval_unask
UPDATE approvals SET state = 'offered', asked_at = NULL WHERE token = :token AND state = 'pending'

-- Once answered, the request's input pictures are not needed again (nothing runs it twice).
-- name: approval_keep_request
UPDATE approvals SET request = :request WHERE token = :token

-- Answered requests go with the jobs' retention days (bot/retention.py).
-- name: prune_approvals
DELETE FROM approvals WHERE token IN (SELECT token FROM approvals
    WHERE state IN ('approved', 'denied', 'expired') AND answered_at < :before ORDER BY answered_at LIMIT :limit)

-- An offer nobody took up is dropped when it expires: it was never asked, so nobody waits for it.
-- name: approvals_drop_offers
DELETE FROM approvals WHERE state = 'offered' AND expires_at <= :now

-- What approved overages cost since a time: their settlements (the ledger names the approver).
-- name: overage_spent
SELECT CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) FROM ledger
WHERE team = :team AND (CAST(:user AS TEXT) IS NULL OR "user" = :user)
AND entry = 'settlement' AND approved_by IS NOT NULL AND created_at >= :since
