-- proctrack registry, schema version 2: the jobs of supervisors.
--
-- A job's root process has its row in `processes` (its owner is the
-- supervisor's owner key, its label the job id); this table adds what
-- `Supervisor::recover` needs to find the rest of the job.
CREATE TABLE jobs (
    -- The job id, `<supervisor name>.<pid>-<start time>.<number>`; also the
    -- value of the PROCTRACK_JOB tag in every member's environment.
    id          TEXT    PRIMARY KEY,
    -- The supervisor's name: which later supervisors recover this job.
    supervisor  TEXT    NOT NULL,
    -- The root process's row.
    process     INTEGER NOT NULL REFERENCES processes (id),
    -- The job's cgroup directory's bytes; NULL without one.
    cgroup      BLOB,
    -- 1 when the job was left running on purpose: recovery leaves it.
    kept        INTEGER NOT NULL DEFAULT 0 CHECK (kept IN (0, 1))
);

CREATE INDEX jobs_supervisor ON jobs (supervisor);
