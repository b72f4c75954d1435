-- Issue 16.6: which diagnoses hold for a camera (covered, blurred, ... night_ir, fog, with confidence; JSON)
-- and whether it is in night / IR mode, from its status messages, so the page can say which cameras are
-- blind and why, in the reader's language.
ALTER TABLE cameras ADD COLUMN diagnoses TEXT NOT NULL DEFAULT '{}';
ALTER TABLE cameras ADD COLUMN night INTEGER NOT NULL DEFAULT 0
