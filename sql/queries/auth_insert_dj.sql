-- Create a DJ account.  Raises a unique violation on djs_email_key or djs_slug_key (answered 409).
INSERT INTO djs (email, display_name, slug, password_hash)
VALUES (%(email)s, %(display_name)s, %(slug)s, %(password_hash)s)
RETURNING id, email, display_name, slug;
