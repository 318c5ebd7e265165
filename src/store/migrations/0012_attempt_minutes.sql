-- Attempts counted per minute, channel (method and target; '' for user messages) and outcome,
-- kept by the writer of the attempts in the same transaction, so channel health's "last 15
-- minutes" reads a few hundred rows whatever the delivery rate, instead of grouping every
-- attempt of the window (900,000 of them at 1,000 messages a second). `minute` is the start
-- of the minute the attempt started in. `shard` spreads concurrent replicas over their own
-- rows on PostgreSQL (the backend's pid modulo 16), as the message counts do; SQLite, with
-- one writer at a time, always writes 0. Rows older than an hour are purged by the retention
-- duty.
CREATE TABLE notification_attempt_minutes (
    minute   {time} NOT NULL,
    method   TEXT NOT NULL,
    target   TEXT NOT NULL,
    outcome  TEXT NOT NULL,
    shard    INTEGER NOT NULL,
    n        {bigint} NOT NULL,
    PRIMARY KEY (minute, method, target, outcome, shard)
);
-- The attempts of the last hour, backfilled.
{postgres}
INSERT INTO notification_attempt_minutes (minute, method, target, outcome, shard, n)
SELECT date_trunc('minute', a.started_at), m.method, COALESCE(m.target, ''), a.outcome, 0,
    COUNT(*)
FROM notification_attempts a JOIN notification_messages m ON m.id = a.message_id
WHERE a.started_at >= now() - interval '1 hour'
GROUP BY 1, 2, 3, 4;
{end}
{sqlite}
INSERT INTO notification_attempt_minutes (minute, method, target, outcome, shard, n)
SELECT substr(a.started_at, 1, 16) || ':00.000000Z', m.method, COALESCE(m.target, ''),
    a.outcome, 0, COUNT(*)
FROM notification_attempts a JOIN notification_messages m ON m.id = a.message_id
WHERE a.started_at >= strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 hour')
GROUP BY 1, 2, 3, 4;
{end}
