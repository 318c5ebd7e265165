-- Herald schema, SQLite flavour. Ids are lowercase hyphenated UUID text (v7, time-ordered);
-- timestamps are fixed-width UTC text `YYYY-MM-DDTHH:MM:SS.ffffffZ`, so text order is time order.

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    username    TEXT NOT NULL UNIQUE,
    email       TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    roles       TEXT NOT NULL DEFAULT '',  -- comma-separated role names
    status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE notification_templates (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL UNIQUE,
    "group"             TEXT NOT NULL,
    title_template      TEXT NOT NULL,
    body_template       TEXT NOT NULL,
    actions             TEXT NOT NULL DEFAULT '[]',  -- JSON array of {label, url}
    audience_roles      TEXT NOT NULL DEFAULT '',    -- comma-separated role names
    enabled_by_default  INTEGER NOT NULL DEFAULT 1,
    method              TEXT CHECK (method IN ('smtp', 'webhook', 'slack_webhook', 'slack_api', 'inbox')),
    kind                TEXT NOT NULL DEFAULT 'system' CHECK (kind IN ('system', 'custom')),
    inbox               INTEGER NOT NULL DEFAULT 1,
    reaches_suspended   INTEGER NOT NULL DEFAULT 0,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL
);

CREATE TABLE notification_preferences (
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    template_id  TEXT NOT NULL REFERENCES notification_templates (id) ON DELETE CASCADE,
    disabled     INTEGER NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (user_id, template_id)
);

CREATE TABLE notification_messages (
    id                        TEXT PRIMARY KEY,
    notification_template_id  TEXT NOT NULL REFERENCES notification_templates (id),
    user_id                   TEXT REFERENCES users (id),
    target                    TEXT,
    method                    TEXT NOT NULL CHECK (method IN ('smtp', 'webhook', 'slack_webhook', 'slack_api', 'inbox')),
    status                    TEXT NOT NULL DEFAULT 'pending' CHECK (status IN
                                  ('pending', 'leased', 'sent', 'temporary_failure', 'permanent_failure', 'inhibited')),
    status_reason             TEXT,
    created_by                TEXT NOT NULL,
    payload                   TEXT NOT NULL,
    attempt_count             INTEGER NOT NULL DEFAULT 0,
    created_at                TEXT NOT NULL,
    updated_at                TEXT NOT NULL,
    leased_until              TEXT,
    next_retry_after          TEXT,
    queued_seconds            REAL,
    dedupe_hash               TEXT UNIQUE
);

-- Counts by state and status-filtered keyset pages (newest first).
CREATE INDEX notification_messages_status_id ON notification_messages (status, id);
-- Event- and user-filtered keyset pages.
CREATE INDEX notification_messages_template_id ON notification_messages (notification_template_id, id);
CREATE INDEX notification_messages_user_id ON notification_messages (user_id, id);
-- Retention and purge by last change.
CREATE INDEX notification_messages_updated_at ON notification_messages (updated_at);

CREATE TABLE notification_attempts (
    message_id      TEXT NOT NULL REFERENCES notification_messages (id) ON DELETE CASCADE,
    attempt_number  INTEGER NOT NULL,
    notifier_id     TEXT NOT NULL,
    started_at      TEXT NOT NULL,
    duration_ms     INTEGER NOT NULL,
    outcome         TEXT NOT NULL,
    reason          TEXT,
    PRIMARY KEY (message_id, attempt_number)
);

CREATE TABLE inbox_notifications (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    template_id  TEXT NOT NULL REFERENCES notification_templates (id),
    message_id   TEXT UNIQUE,  -- at-least-once delivery must not duplicate an inbox entry
    title        TEXT NOT NULL,
    content      TEXT NOT NULL,
    actions      TEXT NOT NULL DEFAULT '[]',
    read_at      TEXT,
    created_at   TEXT NOT NULL
);
CREATE INDEX inbox_notifications_user ON inbox_notifications (user_id, created_at);

CREATE TABLE notification_settings (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    notifier_paused   INTEGER NOT NULL DEFAULT 0,
    updated_at        TEXT NOT NULL,
    retention_holder  TEXT,  -- notifier currently purging; one replica at a time
    retention_until   TEXT
);
INSERT INTO notification_settings (id, notifier_paused, updated_at)
VALUES (1, 0, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));

CREATE TABLE notification_replicas (
    id            TEXT PRIMARY KEY,
    hostname      TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    started_at    TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL,
    in_flight     INTEGER NOT NULL DEFAULT 0
);
