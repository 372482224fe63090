-- Credentials kept by Confab (a bot's channel tokens), sealed with the
-- master key: each value is `v1.<key id>.<nonce and ciphertext>`, bound to
-- its owner and name, so that a sealed value moved to another row does not
-- open there.
CREATE TABLE secrets (
    owner      TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    sealed     TEXT    NOT NULL,
    updated_ms BIGINT  NOT NULL,
    PRIMARY KEY (owner, name)
);
