-- Only the retention purge reads `updated_at`, and it deletes only messages in a final state.
-- Indexing just those spares every lease and every retry the index's delete and insert (the
-- lease's write cost, issue 10's profile); the purge's condition matches this one word for word.
DROP INDEX IF EXISTS notification_messages_updated_at;
CREATE INDEX notification_messages_purgeable ON notification_messages (updated_at)
    WHERE status IN ('sent', 'permanent_failure', 'inhibited');
