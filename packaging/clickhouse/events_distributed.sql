-- The fleet's table: a Distributed table over every shard's contid.events_local.
-- Create it on every server after events_local.sql; `contid_fleet` is the cluster of
-- config.d/remote_servers (see scripts/clickhouse-fleet.sh for one). Writers may insert
-- here (rows go to a shard by host) or into their shard's events_local directly; one
-- host's rows always land on one shard, so FINAL on each shard removes every duplicate.
CREATE TABLE IF NOT EXISTS contid.events AS contid.events_local
ENGINE = Distributed(contid_fleet, contid, events_local, cityHash64(host));
