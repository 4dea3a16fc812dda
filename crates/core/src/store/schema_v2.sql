-- simsweep results database, schema version 2 (from version 1): per-run summaries of the metrics
-- and the record of merged shards. Documented in docs/schema.md.

-- One row per (run, metric, layer) that has rows in `metrics`, kept in the transactions that
-- change those rows. min/max: over non-NULL values, the earliest step on ties.
CREATE TABLE metric_summaries (
    run_pk       INTEGER NOT NULL,
    metric_id    INTEGER NOT NULL,
    layer        INTEGER NOT NULL,
    n            INTEGER NOT NULL,            -- rows (NULL values included)
    first_step   INTEGER NOT NULL,
    first_value  REAL,
    last_step    INTEGER NOT NULL,
    last_value   REAL,
    min_step     INTEGER,
    min_value    REAL,
    max_step     INTEGER,
    max_value    REAL,
    PRIMARY KEY (run_pk, metric_id, layer)
) WITHOUT ROWID;

-- The shards `merge` has read, as they were then: a shard whose file is unchanged (and whose run is
-- held by the same worker) is not read again.
CREATE TABLE shard_merges (
    path       TEXT PRIMARY KEY,              -- absolute path of the shard file
    size       INTEGER NOT NULL,
    mtime_ns   INTEGER NOT NULL,
    worker     TEXT,                          -- the main run's worker when it was merged
    applied    INTEGER NOT NULL,              -- whether the shard's run was merged (1) or skipped (0)
    skipped    TEXT,                          -- why not, when skipped
    merged_at  TEXT NOT NULL
);

CREATE VIEW metric_summary_values AS
    SELECT s.name AS sweep, r.run_id, n.name AS metric, m.layer, m.n, m.first_step, m.first_value,
           m.last_step, m.last_value, m.min_step, m.min_value, m.max_step, m.max_value
    FROM metric_summaries m
    JOIN runs r ON r.run_pk = m.run_pk
    JOIN sweeps s ON s.sweep_id = r.sweep_id
    JOIN metric_names n ON n.metric_id = m.metric_id;
