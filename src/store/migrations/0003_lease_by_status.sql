-- The lease now walks pending messages on (status, id) and due ones on the due index, so the
-- catch-all leasable index only costs writes.
DROP INDEX IF EXISTS notification_messages_leasable;
