-- The audit trail (DESIGN §14): one row per operator action (retry, pause, prefs, opt-outs of
-- others, users, tokens, keys, purge), written in the transaction of the change it records.
-- `id` is a UUIDv7 made at `at`, so the primary key pages newest first; `audit_log_at` serves
-- the retention purge. `detail` is a JSON object (the front end as `via`, counts, ids); it
-- never holds a secret.
CREATE TABLE audit_log (
    id       {id} PRIMARY KEY,
    at       {time} NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    subject  TEXT NOT NULL,
    detail   TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log (at);
