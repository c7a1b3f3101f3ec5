-- -*- mode: sql; sql-product: postgres; -*-
-- Pipebook patch (vendor/PATCHES.md, "read_committed"): remember an aborted transaction's
-- offset range on one partition.
--
-- prepare txn_aborted_insert (text, text, integer, integer, integer, integer) as
insert into txn_aborted
(topition, producer_id, offset_start, offset_end)

select tp.id, $4, $5, $6

from

cluster c
join topic t on t.cluster = c.id
join topition tp on tp.topic = t.id

where

c.name = $1
and t.name = $2
and tp.partition = $3

on conflict (topition, offset_start) do nothing;
