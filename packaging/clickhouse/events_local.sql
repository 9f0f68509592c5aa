-- contid's fleet store: one row per audit event, on each shard (ClickHouse 18.16+).
--
-- ReplacingMergeTree: a batch sent again after a lost answer (contidd's spool, a
-- retried `contid ingest`) writes the same rows twice; rows with the same sorting key
-- collapse at merge time, and every query contid runs reads with FINAL, so a row is
-- never visible twice, even before the merge. The key names an event exactly: a
-- host's (time, serial) is unique; contid and time lead it for "what did container X
-- do, then when". 18.16 has no DateTime64: milliseconds are a column of their own.
-- Old rows go by partition (18.16 has no TTL): ALTER TABLE contid.events_local DROP PARTITION 20261201.
CREATE DATABASE IF NOT EXISTS contid;

CREATE TABLE IF NOT EXISTS contid.events_local
(
    host String,             -- node= of the records, else the host that wrote them
    time DateTime,           -- event time, seconds (UTC)
    ms UInt16,               -- milliseconds of the event time
    serial UInt32,           -- the kernel's event serial
    contid String,           -- innermost container ID as printed; '' when none
    chain Array(String),     -- the whole chain, innermost first, without '^' (4,^2,^1 -> ['4','2','1'])
    labels Array(String),    -- the innermost container's labels, 'k=v' (CONTAINER_INFO)
    types Array(String),     -- record types, in order
    key String,              -- the rule key ('' when none)
    syscall Int32,           -- syscall number, -1 when the event has no SYSCALL record
    success Int8,            -- 1 yes, 0 no, -1 no SYSCALL record
    exit Int64,
    pid Int32,
    ppid Int32,
    uid UInt32,
    auid UInt32,             -- 4294967295 = unset
    ses UInt32,              -- 4294967295 = unset
    comm String,
    exe String,
    raw String               -- the event's records as contid writes them, one per line
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(time)
ORDER BY (contid, time, ms, host, serial);
