-- Replace a DJ's password hash (rehash on login with newer parameters, or an admin reset).
UPDATE djs
SET password_hash = %(password_hash)s, updated_at = now()
WHERE id = %(dj_id)s;
