-- Messages per state, method and target, kept by the same triggers that kept the counts per
-- state (migration 4): channel health's backlog and the header's undeliverable count read a
-- few rows instead of grouping every waiting message, and a status change still costs what it
-- cost before (the counter rows only gain a wider key). `count_by_state` sums the rows of each
-- status as before. `target` is '' for user messages (a key column cannot be NULL). A
-- message's method and target never change, but the triggers follow them if they did.
-- (Version 10 is another branch's.)
--
-- The console's Queue filtered to one target (`target=NAME`, Enter on a channel) pages down
-- this index; only target messages are in it, and their target never changes.
CREATE INDEX notification_messages_target ON notification_messages (target, id)
    WHERE target IS NOT NULL;
{postgres}
--
-- Writers wait until this migration commits, so the backfill below matches the triggers'
-- changes exactly.
LOCK TABLE notification_messages IN SHARE ROW EXCLUSIVE MODE;

DROP TABLE notification_counts;
CREATE TABLE notification_counts (
    status  TEXT NOT NULL,
    method  TEXT NOT NULL,
    target  TEXT NOT NULL,
    shard   INTEGER NOT NULL,
    n       BIGINT NOT NULL,
    PRIMARY KEY (status, method, target, shard)
);

-- Rows are upserted in key order so that two transactions never wait on each other's counter
-- rows in opposite orders.
CREATE OR REPLACE FUNCTION herald_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notification_counts AS c (status, method, target, shard, n)
    SELECT status, method, COALESCE(target, ''), pg_backend_pid() % 16, COUNT(*)
    FROM inserted GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (status, method, target, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION herald_count_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notification_counts AS c (status, method, target, shard, n)
    SELECT status, method, target, pg_backend_pid() % 16, SUM(delta)
    FROM (SELECT status, method, COALESCE(target, '') AS target, 1 AS delta FROM updated
          UNION ALL
          SELECT status, method, COALESCE(target, ''), -1 FROM previous) AS changes
    GROUP BY 1, 2, 3 HAVING SUM(delta) <> 0 ORDER BY 1, 2, 3
    ON CONFLICT (status, method, target, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION herald_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notification_counts AS c (status, method, target, shard, n)
    SELECT status, method, COALESCE(target, ''), pg_backend_pid() % 16, -COUNT(*)
    FROM deleted GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (status, method, target, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END $$;

INSERT INTO notification_counts (status, method, target, shard, n)
SELECT status, method, COALESCE(target, ''), 0, COUNT(*) FROM notification_messages
GROUP BY 1, 2, 3;
{end}
{sqlite}
--
-- One row per status, method and target, kept by row-level triggers; a row is made by the
-- first message that needs it and stays (at zero) when its last message leaves.
DROP TRIGGER notification_counts_insert;
DROP TRIGGER notification_counts_update;
DROP TRIGGER notification_counts_delete;
DROP TABLE notification_counts;
CREATE TABLE notification_counts (
    status  TEXT NOT NULL,
    method  TEXT NOT NULL,
    target  TEXT NOT NULL,
    n       INTEGER NOT NULL,
    PRIMARY KEY (status, method, target)
) WITHOUT ROWID;

INSERT INTO notification_counts (status, method, target, n)
SELECT status, method, COALESCE(target, ''), COUNT(*) FROM notification_messages
GROUP BY 1, 2, 3;

CREATE TRIGGER notification_counts_insert AFTER INSERT ON notification_messages
BEGIN
    INSERT INTO notification_counts (status, method, target, n)
    VALUES (NEW.status, NEW.method, COALESCE(NEW.target, ''), 1)
    ON CONFLICT (status, method, target) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER notification_counts_update AFTER UPDATE OF status, method, target
ON notification_messages
WHEN OLD.status IS NOT NEW.status OR OLD.method IS NOT NEW.method
  OR OLD.target IS NOT NEW.target
BEGIN
    UPDATE notification_counts SET n = n - 1
    WHERE status = OLD.status AND method = OLD.method AND target = COALESCE(OLD.target, '');
    INSERT INTO notification_counts (status, method, target, n)
    VALUES (NEW.status, NEW.method, COALESCE(NEW.target, ''), 1)
    ON CONFLICT (status, method, target) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER notification_counts_delete AFTER DELETE ON notification_messages
BEGIN
    UPDATE notification_counts SET n = n - 1
    WHERE status = OLD.status AND method = OLD.method AND target = COALESCE(OLD.target, '');
END;
{end}
