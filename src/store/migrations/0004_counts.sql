-- Messages per state, kept by triggers, so the console's live counts read a few rows instead
-- of grouping the whole table. `count_by_state` sums the rows of each status.
{postgres}
--
-- PostgreSQL counts with statement-level triggers. Each statement adds its net change per
-- status to the shard of its connection (pg_backend_pid() % 16): a counter row stays locked
-- until its transaction commits, and with one row per status every replica's lease and flush
-- would queue behind the others.
CREATE TABLE notification_counts (
    status  TEXT NOT NULL,
    shard   INTEGER NOT NULL,
    n       BIGINT NOT NULL,
    PRIMARY KEY (status, shard)
);

-- Rows are upserted in status order so that two transactions never wait on each other's
-- counter rows in opposite orders.
CREATE FUNCTION herald_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notification_counts AS c (status, shard, n)
    SELECT status, pg_backend_pid() % 16, COUNT(*) FROM inserted GROUP BY status ORDER BY status
    ON CONFLICT (status, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END $$;

CREATE FUNCTION herald_count_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notification_counts AS c (status, shard, n)
    SELECT status, pg_backend_pid() % 16, SUM(delta)
    FROM (SELECT status, 1 AS delta FROM updated
          UNION ALL
          SELECT status, -1 FROM previous) AS changes
    GROUP BY status HAVING SUM(delta) <> 0 ORDER BY status
    ON CONFLICT (status, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END $$;

CREATE FUNCTION herald_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notification_counts AS c (status, shard, n)
    SELECT status, pg_backend_pid() % 16, -COUNT(*) FROM deleted GROUP BY status ORDER BY status
    ON CONFLICT (status, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END $$;

-- Creating the triggers locks out writers until this migration commits, so the backfill
-- below cannot miss or double-count a concurrent change.
CREATE TRIGGER notification_counts_insert AFTER INSERT ON notification_messages
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION herald_count_inserted();
CREATE TRIGGER notification_counts_update AFTER UPDATE ON notification_messages
    REFERENCING OLD TABLE AS previous NEW TABLE AS updated
    FOR EACH STATEMENT EXECUTE FUNCTION herald_count_updated();
CREATE TRIGGER notification_counts_delete AFTER DELETE ON notification_messages
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION herald_count_deleted();

INSERT INTO notification_counts (status, shard, n)
SELECT status, 0, COUNT(*) FROM notification_messages GROUP BY status;
{end}
{sqlite}
--
-- SQLite has no statement-level triggers, and only one writer at a time: one row per status,
-- kept by row-level triggers. The status CHECK constraint guarantees a row for every status.
CREATE TABLE notification_counts (
    status  TEXT PRIMARY KEY,
    n       INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO notification_counts (status, n)
WITH states (status) AS (VALUES ('pending'), ('leased'), ('sent'), ('temporary_failure'),
                                ('permanent_failure'), ('inhibited'))
SELECT s.status, (SELECT COUNT(*) FROM notification_messages m WHERE m.status = s.status)
FROM states s;

CREATE TRIGGER notification_counts_insert AFTER INSERT ON notification_messages
BEGIN
    UPDATE notification_counts SET n = n + 1 WHERE status = NEW.status;
END;

CREATE TRIGGER notification_counts_update AFTER UPDATE OF status ON notification_messages
WHEN OLD.status IS NOT NEW.status
BEGIN
    UPDATE notification_counts SET n = n - 1 WHERE status = OLD.status;
    UPDATE notification_counts SET n = n + 1 WHERE status = NEW.status;
END;

CREATE TRIGGER notification_counts_delete AFTER DELETE ON notification_messages
BEGIN
    UPDATE notification_counts SET n = n - 1 WHERE status = OLD.status;
END;
{end}
