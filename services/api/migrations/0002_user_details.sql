-- What CloudStack's createAccount requires of a user besides its name and password.
-- NULL for users made before (the bootstrap admin is made from settings without them).
ALTER TABLE users ADD COLUMN email text, ADD COLUMN firstname text, ADD COLUMN lastname text;
