-- The lease query walks leasable messages oldest first; sent and failed ones drop out of it.
CREATE INDEX notification_messages_leasable ON notification_messages (id)
    WHERE status IN ('pending', 'temporary_failure', 'leased');
-- When the next retry or lease expiry comes due.
CREATE INDEX notification_messages_due ON notification_messages (status, next_retry_after, leased_until)
    WHERE status IN ('temporary_failure', 'leased');
CREATE INDEX notification_attempts_started ON notification_attempts (started_at);
{postgres}
ALTER TABLE notification_attempts SET (autovacuum_vacuum_scale_factor = 0.02);
{end}
