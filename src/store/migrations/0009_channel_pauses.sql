-- Scoped pauses (DESIGN §14): one method or one target held on every replica while the rest
-- keeps flowing. Each replica reads this small table before it leases and leaves out what it
-- holds, so the lease statements themselves do not change. (Version 8 is another branch's.)
CREATE TABLE notification_channel_pauses (
    scope      TEXT NOT NULL CHECK (scope IN ('method', 'target')),
    name       TEXT NOT NULL,  -- a method, or a qualified target name (`owner/name`)
    paused_by  TEXT NOT NULL,
    paused_at  {time} NOT NULL,
    PRIMARY KEY (scope, name)
);
