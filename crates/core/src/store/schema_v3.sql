-- simsweep results database, schema version 3 (from version 2): the run status `pruned` (early
-- stopping), each run's planned step count, and the early-stopping board. Documented in
-- docs/schema.md. SQLite cannot change a CHECK constraint in place: `runs` is rebuilt (foreign keys
-- are off during migrations), and the views that read it are made again.

DROP VIEW IF EXISTS run_params;
DROP VIEW IF EXISTS metric_values;
DROP VIEW IF EXISTS metric_summary_values;
DROP VIEW IF EXISTS runs_wide;

CREATE TABLE runs_v3 (
    run_pk        INTEGER PRIMARY KEY,
    run_id        TEXT NOT NULL UNIQUE,       -- 16 hex digits: hash of sweep name + canonical config
    sweep_id      INTEGER NOT NULL REFERENCES sweeps(sweep_id),
    ordinal       INTEGER NOT NULL,           -- position in the sweep's claim order
    seed          INTEGER NOT NULL,
    config_json   TEXT NOT NULL,              -- every resolved setting, flat dotted keys
    canonical     TEXT NOT NULL,              -- what the id hashes
    status        TEXT NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending','running','done','failed','diverged','cancelled','pruned')),
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
    error         TEXT,
    total_steps   INTEGER                     -- the steps the run trains when not stopped (known once started)
);
INSERT INTO runs_v3 (run_pk, run_id, sweep_id, ordinal, seed, config_json, canonical, status, in_plan,
                     step, attempts, created_at, started_at, finished_at, heartbeat_at, host, device,
                     worker, code_version, error)
    SELECT run_pk, run_id, sweep_id, ordinal, seed, config_json, canonical, status, in_plan,
           step, attempts, created_at, started_at, finished_at, heartbeat_at, host, device,
           worker, code_version, error FROM runs;
DROP TABLE runs;
ALTER TABLE runs_v3 RENAME TO runs;
CREATE INDEX runs_by_sweep ON runs(sweep_id, ordinal);
CREATE INDEX runs_by_status ON runs(status);

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

CREATE VIEW metric_summary_values AS
    SELECT s.name AS sweep, r.run_id, n.name AS metric, m.layer, m.n, m.first_step, m.first_value,
           m.last_step, m.last_value, m.min_step, m.min_value, m.max_step, m.max_value
    FROM metric_summaries m
    JOIN runs r ON r.run_pk = m.run_pk
    JOIN sweeps s ON s.sweep_id = r.sweep_id
    JOIN metric_names n ON n.metric_id = m.metric_id;
