-- Slow on purpose: racing runners would both start it without the lock.
SELECT pg_sleep(0.5);
CREATE TABLE widgets (id INTEGER PRIMARY KEY);
