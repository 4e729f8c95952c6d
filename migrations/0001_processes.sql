-- proctrack registry, schema version 1: one row per process a caller registered.
--
-- A row names its process by identity (boot id, pid, start time; the pidfs
-- inode where the kernel has one), never by pid alone: pids are reused.
-- Times are milliseconds since the Unix epoch.
CREATE TABLE processes (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    -- /proc/sys/kernel/random/boot_id of the boot the process ran in.
    boot_id       TEXT    NOT NULL,
    pid           INTEGER NOT NULL CHECK (pid > 0),
    -- The platform's raw start time (Linux: clock ticks since boot).
    start_time    INTEGER NOT NULL,
    -- fstat(pidfd).st_ino on Linux 6.9 and later; NULL where unknown.
    pidfs_inode   INTEGER,
    -- Whatever the caller groups its processes by (an execution id, say).
    owner         TEXT    NOT NULL,
    label         TEXT    NOT NULL DEFAULT '',
    -- The arguments, each followed by a NUL byte (as /proc/<pid>/cmdline).
    command       BLOB    NOT NULL DEFAULT x'',
    -- The working directory's bytes; NULL where unknown.
    cwd           BLOB,
    pgid          INTEGER,
    sid           INTEGER,
    status        TEXT    NOT NULL DEFAULT 'running'
                  CHECK (status IN ('running', 'exited', 'killed', 'lost')),
    -- Who or what ended the row; NULL while running.
    end_reason    TEXT
                  CHECK (end_reason IN ('reported', 'gone', 'pid_reused', 'earlier_boot', 'reaped')),
    exit_code     INTEGER,
    -- What the tree kill of a reap did, in words.
    kill_report   TEXT,
    registered_at INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    ended_at      INTEGER
);

-- "Which rows are running?" (reconcile, reap) reads only these.
CREATE INDEX processes_running ON processes (id) WHERE status = 'running';

-- "The rows of this owner", in registration order.
CREATE INDEX processes_owner ON processes (owner, id);
