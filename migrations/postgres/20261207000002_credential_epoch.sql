-- The account's credential epoch: a password change or reset, logout-all and any change of a
-- second factor or passkey add one. A mail token carries the epoch it was issued under and
-- works only while the account is still at it, so those actions void every pending link.
ALTER TABLE users ADD COLUMN credential_epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE email_tokens ADD COLUMN credential_epoch BIGINT NOT NULL DEFAULT 0;
