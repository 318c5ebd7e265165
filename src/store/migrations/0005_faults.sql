-- Each lease writes a fresh token; an outcome is applied only while its message still holds
-- the token it was delivered under (DESIGN §5), so a late outcome never overwrites a newer one.
ALTER TABLE notification_messages ADD COLUMN lease_token {id};
-- What each replica can deliver (DESIGN §6): {"methods": […], "targets": […]}.
ALTER TABLE notification_replicas ADD COLUMN capabilities TEXT NOT NULL
    DEFAULT '{"methods":[],"targets":[]}';
