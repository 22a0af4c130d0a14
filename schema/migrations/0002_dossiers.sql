-- Dossiers, their timeline, their attachments and their search index.
--
-- No foreign keys from dossiers to procedures or units: the projector of a merge writes dossier
-- rows in the same transaction as whatever reference data came with it, and a replica that has
-- not yet received the procedure catalogue (a fresh box, a commune offline for weeks) must still
-- store the dossiers routed to it. A hard FK would fail that merge. Steps and attachments do
-- reference their dossier: the projector writes a dossier's row before its children.
--
-- dossiers.code is indexed but not UNIQUE: codes come from each node's daily sequence, and a
-- node restored from an older backup can hand out a code again. A UNIQUE violation would make
-- every later merge of that dossier fail; a duplicate code is instead found by a query and
-- shown to a clerk.

CREATE TABLE dossiers (
    -- An explicit INTEGER PRIMARY KEY: the FTS index is keyed by this rowid, and VACUUM may
    -- renumber the implicit rowid of a table that has none.
    rid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,              -- the sync entity id
    code TEXT NOT NULL,                   -- <unit>-<yymmdd>-<nnnn>, printed on the receipt
    portal_code TEXT,                     -- code on the national public service portal
    procedure_code TEXT NOT NULL,
    receiving_unit TEXT NOT NULL,
    handling_unit TEXT NOT NULL,          -- differs for non-territorial dossiers
    channel TEXT NOT NULL CHECK (channel IN ('direct', 'online')),
    applicant_type TEXT NOT NULL CHECK (applicant_type IN ('citizen', 'organisation')),
    applicant_name TEXT NOT NULL,
    applicant_citizen_id TEXT,            -- CCCD, or tax code of an organisation
    applicant_dob TEXT,                   -- YYYY-MM-DD
    applicant_phone TEXT,
    applicant_email TEXT,
    applicant_address TEXT,
    applicant_address_unit TEXT,          -- unit code of the address
    status INTEGER NOT NULL CHECK (status BETWEEN 1 AND 10),   -- national portal codes
    received_at INTEGER NOT NULL,         -- ms since epoch
    due_date TEXT,                        -- YYYY-MM-DD, counted in working days
    processed_at INTEGER,                 -- HLC wall ms of the move to 9 (processed)
    closed_at INTEGER,                    -- HLC wall ms of the move to a terminal status
    fee INTEGER NOT NULL DEFAULT 0,       -- VND
    documents TEXT NOT NULL DEFAULT '[]', -- JSON: the document components received
    digitised INTEGER NOT NULL DEFAULT 0 CHECK (digitised IN (0, 1)),
    attachment_count INTEGER NOT NULL DEFAULT 0,
    conflict_count INTEGER NOT NULL DEFAULT 0,
    updated_stamp INTEGER NOT NULL,       -- packed HLC stamp of the last op applied
    search TEXT NOT NULL DEFAULT ''       -- folded (no diacritics, lowercase) searchable text
);

CREATE INDEX dossiers_code ON dossiers (code);
CREATE INDEX dossiers_status ON dossiers (status, due_date);
CREATE INDEX dossiers_handling ON dossiers (handling_unit, status, due_date);
CREATE INDEX dossiers_receiving ON dossiers (receiving_unit, status, due_date);
CREATE INDEX dossiers_due ON dossiers (due_date);
CREATE INDEX dossiers_received ON dossiers (received_at);
CREATE INDEX dossiers_procedure ON dossiers (procedure_code, received_at);

-- The timeline, in fold (HLC) order: the same on every replica. A late op can insert a step in
-- the middle, so the projector rewrites positions from the first one that changed.
CREATE TABLE dossier_steps (
    dossier_id TEXT NOT NULL REFERENCES dossiers (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,            -- 0 is the create step
    stamp INTEGER NOT NULL,               -- packed HLC stamp of the op
    node TEXT NOT NULL,                   -- origin node of the op
    seq INTEGER NOT NULL,                 -- its per-node sequence number
    at INTEGER NOT NULL,                  -- HLC wall ms
    actor TEXT NOT NULL,                  -- the account that acted ("by" in the op)
    role TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('create', 'transition', 'transfer', 'extend')),
    from_status INTEGER,                  -- NULL for the create step
    to_status INTEGER NOT NULL,
    note TEXT,
    handling_unit TEXT NOT NULL,          -- the handling unit after this step
    PRIMARY KEY (dossier_id, position)
) WITHOUT ROWID;

CREATE INDEX dossier_steps_actor ON dossier_steps (actor, at);

CREATE TABLE attachments (
    dossier_id TEXT NOT NULL REFERENCES dossiers (id) ON DELETE CASCADE,
    sha256 TEXT NOT NULL,                 -- the content-addressed blob
    name TEXT NOT NULL,
    mime TEXT NOT NULL,
    size INTEGER NOT NULL,
    added_by TEXT NOT NULL,
    added_at INTEGER NOT NULL,            -- HLC wall ms
    PRIMARY KEY (dossier_id, sha256)
) WITHOUT ROWID;

CREATE INDEX attachments_blob ON attachments (sha256);

-- Search by code, applicant name and citizen id. The projector feeds it text folded by
-- schema.codes.fold_text (lowercase, no diacritics, đ -> d), because unicode61's
-- remove_diacritics leaves đ alone: "dang" must find "Đặng". rowid = dossiers.rid.
CREATE VIRTUAL TABLE dossier_fts USING fts5 (
    code, applicant_name, citizen_id,
    tokenize = 'unicode61 remove_diacritics 2'
);

-- Drop a stale index row when the searchable text changes; the projector adds the new one.
CREATE TRIGGER dossiers_search_changed AFTER UPDATE OF search ON dossiers
WHEN old.search IS NOT new.search
BEGIN
    DELETE FROM dossier_fts WHERE rowid = old.rid;
END;

CREATE TRIGGER dossiers_deleted AFTER DELETE ON dossiers
BEGIN
    DELETE FROM dossier_fts WHERE rowid = old.rid;
END;
