-- One DJ account by its (lower-case) email, with its password hash, for login and admin commands.
SELECT id, email, display_name, slug, password_hash
FROM djs
WHERE email = %(email)s;
