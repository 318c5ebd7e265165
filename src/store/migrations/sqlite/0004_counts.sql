-- Messages per state, kept by triggers, so the console's live counts read six rows instead of
-- grouping the whole table. The status CHECK constraint guarantees a row for every status.
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
