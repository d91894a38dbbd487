-- The name a user gives (the user object's `name`, the `name` claim of scope `profile`).
ALTER TABLE users ADD COLUMN name TEXT;
