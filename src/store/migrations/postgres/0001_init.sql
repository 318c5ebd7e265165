-- Herald schema, PostgreSQL flavour.

CREATE TABLE users (
    id          UUID PRIMARY KEY,
    username    TEXT NOT NULL UNIQUE,
    email       TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    roles       TEXT NOT NULL DEFAULT '',  -- comma-separated role names
    status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE notification_templates (
    id                  UUID PRIMARY KEY,
    name                TEXT NOT NULL UNIQUE,
    "group"             TEXT NOT NULL,
    title_template      TEXT NOT NULL,
    body_template       TEXT NOT NULL,
    actions             TEXT NOT NULL DEFAULT '[]',  -- JSON array of {label, url}
    audience_roles      TEXT NOT NULL DEFAULT '',    -- comma-separated role names
    enabled_by_default  BOOLEAN NOT NULL DEFAULT TRUE,
    method              TEXT CHECK (method IN ('smtp', 'webhook', 'slack_webhook', 'slack_api', 'inbox')),
    kind                TEXT NOT NULL DEFAULT 'system' CHECK (kind IN ('system', 'custom')),
    inbox               BOOLEAN NOT NULL DEFAULT TRUE,
    reaches_suspended   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);

CREATE TABLE notification_preferences (
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    template_id  UUID NOT NULL REFERENCES notification_templates (id) ON DELETE CASCADE,
    disabled     BOOLEAN NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, template_id)
);

CREATE TABLE notification_messages (
    id                        UUID PRIMARY KEY,
    notification_template_id  UUID NOT NULL REFERENCES notification_templates (id),
    user_id                   UUID REFERENCES users (id),
    target                    TEXT,
    method                    TEXT NOT NULL CHECK (method IN ('smtp', 'webhook', 'slack_webhook', 'slack_api', 'inbox')),
    status                    TEXT NOT NULL DEFAULT 'pending' CHECK (status IN
                                  ('pending', 'leased', 'sent', 'temporary_failure', 'permanent_failure', 'inhibited')),
    status_reason             TEXT,
    created_by                TEXT NOT NULL,
    payload                   JSONB NOT NULL,
    attempt_count             INTEGER NOT NULL DEFAULT 0,
    created_at                TIMESTAMPTZ NOT NULL,
    updated_at                TIMESTAMPTZ NOT NULL,
    leased_until              TIMESTAMPTZ,
    next_retry_after          TIMESTAMPTZ,
    queued_seconds            DOUBLE PRECISION,
    dedupe_hash               TEXT UNIQUE
);

CREATE INDEX notification_messages_status_id ON notification_messages (status, id);
CREATE INDEX notification_messages_template_id ON notification_messages (notification_template_id, id);
CREATE INDEX notification_messages_user_id ON notification_messages (user_id, id);
CREATE INDEX notification_messages_updated_at ON notification_messages (updated_at);

-- The queue churns: vacuum often so lease scans do not wade through dead index entries.
ALTER TABLE notification_messages SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);

CREATE TABLE notification_attempts (
    message_id      UUID NOT NULL REFERENCES notification_messages (id) ON DELETE CASCADE,
    attempt_number  INTEGER NOT NULL,
    notifier_id     UUID NOT NULL,
    started_at      TIMESTAMPTZ NOT NULL,
    duration_ms     BIGINT NOT NULL,
    outcome         TEXT NOT NULL,
    reason          TEXT,
    PRIMARY KEY (message_id, attempt_number)
);

CREATE TABLE inbox_notifications (
    id           UUID PRIMARY KEY,
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    template_id  UUID NOT NULL REFERENCES notification_templates (id),
    message_id   UUID UNIQUE,  -- at-least-once delivery must not duplicate an inbox entry
    title        TEXT NOT NULL,
    content      TEXT NOT NULL,
    actions      TEXT NOT NULL DEFAULT '[]',
    read_at      TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX inbox_notifications_user ON inbox_notifications (user_id, created_at);

CREATE TABLE notification_settings (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    notifier_paused   BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at        TIMESTAMPTZ NOT NULL,
    retention_holder  UUID,
    retention_until   TIMESTAMPTZ
);
INSERT INTO notification_settings (id, notifier_paused, updated_at) VALUES (1, FALSE, now());

CREATE TABLE notification_replicas (
    id            UUID PRIMARY KEY,
    hostname      TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    started_at    TIMESTAMPTZ NOT NULL,
    last_seen_at  TIMESTAMPTZ NOT NULL,
    in_flight     INTEGER NOT NULL DEFAULT 0
);
