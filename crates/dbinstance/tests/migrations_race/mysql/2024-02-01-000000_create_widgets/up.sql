-- Slow on purpose: racing runners would both start it without the lock.
DO SLEEP(0.5);
CREATE TABLE widgets (id INTEGER PRIMARY KEY);
