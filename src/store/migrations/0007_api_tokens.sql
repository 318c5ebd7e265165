-- API tokens for the producers' HTTP API (DESIGN §12). Only the SHA-256 of a token is stored;
-- the secret itself is shown once, when it is made. A revoked token keeps its row (and so its
-- `last_used_at`) with `revoked_at` set, and is refused from that moment on: the API reads this
-- table on every request.
CREATE TABLE api_tokens (
    id            {id} PRIMARY KEY,
    user_id       {id} NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,  -- lowercase hex SHA-256 of the whole token
    created_at    {time} NOT NULL,
    last_used_at  {time},
    revoked_at    {time}
);
-- A name picks one live token of its user (`herald tokens revoke NAME [--user U]`); a revoked
-- token's name may be used again.
CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens (user_id, name) WHERE revoked_at IS NULL;
