-- -*- mode: sql; sql-product: postgres; -*-
-- Pipebook patch (vendor/PATCHES.md, "read_committed"): the last stable offset is the first
-- offset of the earliest transaction still open on the partition (its txn_produce_offset row
-- is deleted when it ends); null when none is open.
--
-- prepare watermark_select_last_stable (text, text, integer) as
select

min(txn_po.offset_start) as last_stable

from

cluster c
join topic t on t.cluster = c.id
join topition tp on tp.topic = t.id
join txn_topition txn_tp on txn_tp.topition = tp.id
join txn_produce_offset txn_po on txn_po.txn_topition = txn_tp.id

where

c.name = $1
and t.name = $2
and tp.partition = $3;
