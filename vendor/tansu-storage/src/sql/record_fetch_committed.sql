-- -*- mode: sql; sql-product: postgres; -*-
-- Pipebook patch (vendor/PATCHES.md, "read_committed"): record_fetch.sql without the data
-- records of aborted transactions (their control markers stay, so readers move past them).
--
-- prepare record_fetch_committed (text, text, integer, integer, integer, integer) as
with sized as (
select

r.offset_id,
r.attributes,
r.timestamp,
r.k,
r.v,
sum(coalesce(length(r.k), 0) + coalesce(length(r.v), 0)) over (order by r.offset_id) as bytes,
r.producer_id,
r.producer_epoch

from

cluster c
join topic t on t.cluster = c.id
join topition tp on tp.topic = t.id
join record r on r.topition = tp.id

where

c.name = $1
and t.name = $2
and tp.partition = $3
and r.offset_id >= $4
and r.offset_id < $6
and (
    r.producer_id is null
    or (coalesce(r.attributes, 0) & 32) != 0
    or not exists (
        select 1 from txn_aborted a
        where a.topition = tp.id
        and a.producer_id = r.producer_id
        and r.offset_id between a.offset_start and a.offset_end
    )
))

select * from sized where bytes < $5;
