-- Reference data: units, the procedure catalogue, accounts.
--
-- Every domain table is a projection of folded entity states (schema/projection.py); the op log
-- itself lives in sync's tables. A projection must never fail on a state the fold produced, or
-- one bad entity would block every merge that carries it. So cross-entity rules a CRDT cannot
-- enforce (a unit referenced before it arrives, two nodes racing for one code) are not
-- constraints here: references are plain columns, not foreign keys, because a replica may
-- project an account or a dossier before the unit or procedure it names has reached it.

CREATE TABLE units (
    code TEXT PRIMARY KEY,            -- official code ("92", "31135") or ours ("92-SO-TP")
    name TEXT NOT NULL,
    division_type TEXT NOT NULL,      -- as the national list spells it: "xã", "phường", "sở"
    kind TEXT NOT NULL CHECK (kind IN
        ('province', 'commune', 'ward', 'special_zone', 'department', 'centre')),
    province_code TEXT NOT NULL,
    parent_code TEXT,                 -- no FK: see above
    active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    updated_stamp INTEGER NOT NULL    -- packed HLC stamp of the last op applied
);

CREATE INDEX units_province ON units (province_code, kind);

CREATE TABLE procedures (
    code TEXT PRIMARY KEY,            -- national procedure code, "1.004194"
    name TEXT NOT NULL,
    sector TEXT NOT NULL DEFAULT '',
    handling_level TEXT NOT NULL DEFAULT '',
    processing_days INTEGER,          -- working days; NULL when the law sets none
    documents TEXT NOT NULL DEFAULT '[]',   -- JSON list of required document components
    fee INTEGER NOT NULL DEFAULT 0,   -- VND
    fee_online INTEGER NOT NULL DEFAULT 0,
    result TEXT NOT NULL DEFAULT '',
    legal_basis TEXT NOT NULL DEFAULT '',
    active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    updated_stamp INTEGER NOT NULL
);

CREATE INDEX procedures_sector ON procedures (sector);

-- An account's entity id is its username (schema/kinds.py), so two nodes creating the same
-- username write one entity and the second create becomes a conflict: the UNIQUE constraint
-- below can therefore never fail a projection.
CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    full_name TEXT NOT NULL,
    unit_code TEXT NOT NULL,          -- no FK: see above
    role TEXT NOT NULL CHECK (role IN ('clerk', 'leader', 'admin')),
    password_hash TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    updated_stamp INTEGER NOT NULL
);

CREATE INDEX accounts_unit ON accounts (unit_code, role);
