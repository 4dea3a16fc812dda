-- The early-stopping board (docs/schema.md, "Search"): what each run reported of the search metric
-- and every decision taken on it. In the results database (schema version 3) for the local
-- executor, and in <results>/shards/<sweep>/search.db, shared by the tasks of a Slurm job array.

-- One row per (run, evaluation step) of the search metric. value NULL: not a number.
CREATE TABLE IF NOT EXISTS search_reports (
    sweep    TEXT NOT NULL,
    setting  TEXT NOT NULL,                 -- hash of the run's settings without seed
    run_id   TEXT NOT NULL,
    step     INTEGER NOT NULL,
    value    REAL,
    at       TEXT NOT NULL,
    PRIMARY KEY (sweep, run_id, step)
) WITHOUT ROWID;

-- One row per decision: a setting continues or is pruned at a rung (ASHA) or a step (median).
CREATE TABLE IF NOT EXISTS search_decisions (
    decision_id  INTEGER PRIMARY KEY,
    sweep        TEXT NOT NULL,
    setting      TEXT NOT NULL,
    run_id       TEXT NOT NULL,             -- the run whose report was judged
    method       TEXT NOT NULL CHECK (method IN ('asha','median')),
    metric       TEXT NOT NULL,
    step         INTEGER NOT NULL,          -- the report's step
    rung         INTEGER NOT NULL,          -- ASHA: the rung's step; median: the step
    value        REAL,                      -- the setting's value judged (mean over its seeds)
    threshold    REAL,                      -- what it was compared with
    compared     INTEGER NOT NULL,          -- settings the threshold was computed from
    seeds        INTEGER NOT NULL,          -- seeds of the setting behind `value`
    verdict      TEXT NOT NULL CHECK (verdict IN ('continue','prune')),
    message      TEXT NOT NULL,
    at           TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS search_decisions_by_setting ON search_decisions(sweep, setting, verdict);
