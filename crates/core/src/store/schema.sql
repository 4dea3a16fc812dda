-- simsweep results database, schema version 1 (PRAGMA user_version = 1).
-- Documented in docs/schema.md. Tables are the storage; the views at the end are the stable
-- interface for sqlite3, pandas and DuckDB users.

CREATE TABLE sweeps (
    sweep_id     INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    description  TEXT NOT NULL DEFAULT '',
    file_path    TEXT NOT NULL,
    file_text    TEXT NOT NULL,              -- the sweep file as last planned
    swept_keys   TEXT NOT NULL DEFAULT '[]', -- JSON array of the keys varied by grid/zip/random
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);

CREATE TABLE runs (
    run_pk        INTEGER PRIMARY KEY,
    run_id        TEXT NOT NULL UNIQUE,       -- 16 hex digits: hash of sweep name + canonical config
    sweep_id      INTEGER NOT NULL REFERENCES sweeps(sweep_id),
    ordinal       INTEGER NOT NULL,           -- position in the sweep's expansion order
    seed          INTEGER NOT NULL,
    config_json   TEXT NOT NULL,              -- every resolved setting, flat dotted keys
    canonical     TEXT NOT NULL,              -- what the id hashes
    status        TEXT NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending','running','done','failed','diverged','cancelled')),
    in_plan       INTEGER NOT NULL DEFAULT 1, -- 0: no longer produced by the sweep file (results kept)
    step          INTEGER,                    -- last step reached
    attempts      INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    started_at    TEXT,
    finished_at   TEXT,
    heartbeat_at  TEXT,
    host          TEXT,
    device        TEXT,
    worker        TEXT,                       -- who holds the claim: host:pid
    code_version  TEXT,
    error         TEXT
);
CREATE INDEX runs_by_sweep ON runs(sweep_id, ordinal);
CREATE INDEX runs_by_status ON runs(status);

CREATE TABLE param_keys (
    key_id  INTEGER PRIMARY KEY,
    key     TEXT NOT NULL UNIQUE
);

-- Every resolved setting of every run; value typed (INTEGER, REAL, TEXT; lists as JSON text).
CREATE TABLE params (
    run_pk  INTEGER NOT NULL REFERENCES runs(run_pk),
    key_id  INTEGER NOT NULL REFERENCES param_keys(key_id),
    value,
    PRIMARY KEY (run_pk, key_id)
) WITHOUT ROWID;
CREATE INDEX params_by_key ON params(key_id, value);

CREATE TABLE metric_names (
    metric_id  INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE
);

-- One row per (run, metric, layer, step). layer = -1 for values that are not per layer.
CREATE TABLE metrics (
    run_pk     INTEGER NOT NULL,
    metric_id  INTEGER NOT NULL,
    layer      INTEGER NOT NULL DEFAULT -1,
    step       INTEGER NOT NULL,
    value      REAL,
    PRIMARY KEY (run_pk, metric_id, layer, step)
) WITHOUT ROWID;
-- No secondary index: the key serves per-run reads (run_pk) and per-metric reads, which go run by
-- run through (run_pk, metric_id); a second index would double the cost of every insert.

CREATE TABLE checkpoints (
    run_pk      INTEGER NOT NULL REFERENCES runs(run_pk),
    kind        TEXT NOT NULL CHECK (kind IN ('last','best','final')),
    step        INTEGER NOT NULL,
    path        TEXT NOT NULL,
    metric      TEXT,                         -- what "best" was judged by
    value       REAL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (run_pk, kind)
);

CREATE TABLE events (
    event_id  INTEGER PRIMARY KEY,
    at        TEXT NOT NULL,
    sweep_id  INTEGER REFERENCES sweeps(sweep_id),
    run_pk    INTEGER REFERENCES runs(run_pk),
    kind      TEXT NOT NULL,                  -- planned, started, finished, failed, ...
    message   TEXT NOT NULL DEFAULT '',
    data      TEXT                            -- JSON
);
CREATE INDEX events_by_run ON events(run_pk, event_id);

CREATE VIEW run_params AS
    SELECT s.name AS sweep, r.run_id, k.key, p.value
    FROM params p
    JOIN runs r ON r.run_pk = p.run_pk
    JOIN sweeps s ON s.sweep_id = r.sweep_id
    JOIN param_keys k ON k.key_id = p.key_id;

CREATE VIEW metric_values AS
    SELECT s.name AS sweep, r.run_id, m.step, n.name AS metric, m.value, m.layer
    FROM metrics m
    JOIN runs r ON r.run_pk = m.run_pk
    JOIN sweeps s ON s.sweep_id = r.sweep_id
    JOIN metric_names n ON n.metric_id = m.metric_id;
