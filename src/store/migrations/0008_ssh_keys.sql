-- SSH public keys for the console over SSH (DESIGN §13): each key names one Herald user, and a
-- connection that proves it holds the key opens the console as that user. Only public keys are
-- stored. A key is looked up by its OpenSSH SHA-256 fingerprint, so a key belongs to one user.
CREATE TABLE user_ssh_keys (
    id            {id} PRIMARY KEY,
    user_id       {id} NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    public_key    TEXT NOT NULL,         -- OpenSSH one-line form without the comment
    fingerprint   TEXT NOT NULL UNIQUE,  -- `SHA256:` and unpadded base64, as ssh-keygen -l shows
    comment       TEXT NOT NULL,
    created_at    {time} NOT NULL,
    last_used_at  {time}
);
CREATE INDEX user_ssh_keys_user ON user_ssh_keys (user_id);
