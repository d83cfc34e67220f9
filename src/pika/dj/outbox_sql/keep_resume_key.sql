-- Keep the resumeKey the server gave, so a restarted agent resumes the session.
INSERT INTO sessions (session_id, resume_key) VALUES (?, ?)
ON CONFLICT (session_id) DO UPDATE SET resume_key = excluded.resume_key;
