-- -*- mode: sql; sql-product: postgres; -*-
-- Pipebook patch (vendor/PATCHES.md, "read_committed"): the offset range each aborted
-- transaction wrote per partition, kept after the transaction ends (txn_produce_offset rows
-- are deleted then), so read_committed fetches can leave aborted records out.
create table if not exists txn_aborted (
    id integer primary key autoincrement,
    topition integer references topition (id) on delete cascade,
    producer_id integer not null,
    offset_start integer not null,
    offset_end integer not null,
    created_at datetime default current_timestamp not null,
    unique (topition, offset_start)
);
