-- Herald schema. PostgreSQL has native UUID, TIMESTAMPTZ, JSONB and BOOLEAN columns; in SQLite
-- ids are lowercase hyphenated UUID text (v7, time-ordered) and timestamps are fixed-width UTC
-- text `YYYY-MM-DDTHH:MM:SS.ffffffZ`, so text order is time order.

CREATE TABLE users (
    id          {id} PRIMARY KEY,
    username    TEXT NOT NULL UNIQUE,
    email       TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    roles       TEXT NOT NULL DEFAULT '',  -- comma-separated role names
    status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_at  {time} NOT NULL,
    updated_at  {time} NOT NULL
);

CREATE TABLE notification_templates (
    id                  {id} PRIMARY KEY,
    name                TEXT NOT NULL UNIQUE,
    "group"             TEXT NOT NULL,
    title_template      TEXT NOT NULL,
    body_template       TEXT NOT NULL,
    actions             TEXT NOT NULL DEFAULT '[]',  -- JSON array of {label, url}
    audience_roles      TEXT NOT NULL DEFAULT '',    -- comma-separated role names
    enabled_by_default  {bool} NOT NULL DEFAULT {true},
    method              TEXT CHECK (method IN ('smtp', 'webhook', 'slack_webhook', 'slack_api', 'inbox')),
    kind                TEXT NOT NULL DEFAULT 'system' CHECK (kind IN ('system', 'custom')),
    inbox               {bool} NOT NULL DEFAULT {true},
    reaches_suspended   {bool} NOT NULL DEFAULT {false},
    created_at          {time} NOT NULL,
    updated_at          {time} NOT NULL
);

CREATE TABLE notification_preferences (
    user_id      {id} NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    template_id  {id} NOT NULL REFERENCES notification_templates (id) ON DELETE CASCADE,
    disabled     {bool} NOT NULL,
    created_at   {time} NOT NULL,
    updated_at   {time} NOT NULL,
    PRIMARY KEY (user_id, template_id)
);

CREATE TABLE notification_messages (
    id                        {id} PRIMARY KEY,
    notification_template_id  {id} NOT NULL REFERENCES notification_templates (id),
    user_id                   {id} REFERENCES users (id),
    target                    TEXT,
    method                    TEXT NOT NULL CHECK (method IN ('smtp', 'webhook', 'slack_webhook', 'slack_api', 'inbox')),
    status                    TEXT NOT NULL DEFAULT 'pending' CHECK (status IN
                                  ('pending', 'leased', 'sent', 'temporary_failure', 'permanent_failure', 'inhibited')),
    status_reason             TEXT,
    created_by                TEXT NOT NULL,
    payload                   {json} NOT NULL,
    attempt_count             INTEGER NOT NULL DEFAULT 0,
    created_at                {time} NOT NULL,
    updated_at                {time} NOT NULL,
    leased_until              {time},
    next_retry_after          {time},
    queued_seconds            {real},
    dedupe_hash               TEXT UNIQUE
);

-- Counts by state and status-filtered keyset pages (newest first).
CREATE INDEX notification_messages_status_id ON notification_messages (status, id);
-- Event- and user-filtered keyset pages.
CREATE INDEX notification_messages_template_id ON notification_messages (notification_template_id, id);
CREATE INDEX notification_messages_user_id ON notification_messages (user_id, id);
-- Retention and purge by last change.
CREATE INDEX notification_messages_updated_at ON notification_messages (updated_at);

{postgres}
-- The queue churns: vacuum often so lease scans do not wade through dead index entries.
ALTER TABLE notification_messages SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);
{end}

CREATE TABLE notification_attempts (
    message_id      {id} NOT NULL REFERENCES notification_messages (id) ON DELETE CASCADE,
    attempt_number  INTEGER NOT NULL,
    notifier_id     {id} NOT NULL,
    started_at      {time} NOT NULL,
    duration_ms     {bigint} NOT NULL,
    outcome         TEXT NOT NULL,
    reason          TEXT,
    PRIMARY KEY (message_id, attempt_number)
);

CREATE TABLE inbox_notifications (
    id           {id} PRIMARY KEY,
    user_id      {id} NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    template_id  {id} NOT NULL REFERENCES notification_templates (id),
    message_id   {id} UNIQUE,  -- at-least-once delivery must not duplicate an inbox entry
    title        TEXT NOT NULL,
    content      TEXT NOT NULL,
    actions      TEXT NOT NULL DEFAULT '[]',
    read_at      {time},
    created_at   {time} NOT NULL
);
CREATE INDEX inbox_notifications_user ON inbox_notifications (user_id, created_at);

CREATE TABLE notification_settings (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    notifier_paused   {bool} NOT NULL DEFAULT {false},
    updated_at        {time} NOT NULL,
    retention_holder  {id},  -- notifier currently purging; one replica at a time
    retention_until   {time}
);
INSERT INTO notification_settings (id, notifier_paused, updated_at)
VALUES (1, {false}, {now});

CREATE TABLE notification_replicas (
    id            {id} PRIMARY KEY,
    hostname      TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    started_at    {time} NOT NULL,
    last_seen_at  {time} NOT NULL,
    in_flight     INTEGER NOT NULL DEFAULT 0
);
