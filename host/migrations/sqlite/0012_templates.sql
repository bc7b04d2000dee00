-- Message templates: every version of every (name, language) the business defined, or that
-- the Cloud API listed for the business account. `status` is where a version stands:
-- AWAITING_REVIEW (manual review), SUBMITTING (lint-clean, on its way to the Cloud API),
-- then Meta's own PENDING, APPROVED, REJECTED, PAUSED, DISABLED. What a (name, language) may
-- send is decided by its newest version that reached Meta (`meta_id` set).
CREATE TABLE templates (
    name        TEXT    NOT NULL,
    language    TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    category    TEXT    NOT NULL,
    definition  TEXT    NOT NULL,   -- JSON, the Cloud API's creation body
    status      TEXT    NOT NULL,
    reason      TEXT,
    meta_id     TEXT,
    quality     TEXT,
    findings    TEXT    NOT NULL DEFAULT '[]',   -- JSON, lint warnings kept with the version
    created_by  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (name, language, version)
) WITHOUT ROWID;

CREATE INDEX templates_status ON templates (status, updated_at);
CREATE INDEX templates_meta_id ON templates (meta_id);
