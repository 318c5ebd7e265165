-- Every status change on PostgreSQL is a non-HOT update (the status is in indexes), so it adds
-- an entry to every index of notification_messages whose condition the row meets: two for each
-- lease and ack in the two indexes below, for rows with no dedupe hash (most) or no user (every
-- target message), where the entry only ever said NULL. Indexing only the rows with a value
-- keeps every lookup by hash or by user as it was; a hash stays unique. SQLite changes only
-- the indexes whose columns an update changes, so it keeps its indexes.
-- (Written to run again over its own result.)
{postgres}
CREATE UNIQUE INDEX IF NOT EXISTS notification_messages_dedupe_hash
    ON notification_messages (dedupe_hash) WHERE dedupe_hash IS NOT NULL;
ALTER TABLE notification_messages DROP CONSTRAINT IF EXISTS notification_messages_dedupe_hash_key;
DROP INDEX IF EXISTS notification_messages_user_id;
CREATE INDEX notification_messages_user_id ON notification_messages (user_id, id)
    WHERE user_id IS NOT NULL;
{end}
