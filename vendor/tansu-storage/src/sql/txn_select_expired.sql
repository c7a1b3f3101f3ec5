-- -*- mode: sql; sql-product: postgres; -*-
-- Pipebook patch (vendor/PATCHES.md, "transaction timeout"): the open transactions (BEGIN)
-- of the current epoch of their producer whose transaction.timeout.ms has run out at $2
-- (unix seconds). started_at is SQLite's current_timestamp, in whole seconds, so one second
-- is taken off the elapsed time: a transaction is never aborted before its timeout. Only the
-- current epoch: an older one is already fenced (and a fenced producer's AddPartitionsToTxn
-- can still mark its old row BEGIN).
--
-- prepare txn_select_expired (text, integer) as
select

txn.name,
p.id,
pe.epoch,
txn_d.transaction_timeout_ms

from

cluster c
join txn on txn.cluster = c.id
join producer p on p.cluster = c.id and txn.producer = p.id
join producer_epoch pe on pe.producer = p.id
join txn_detail txn_d on txn_d."transaction" = txn.id and txn_d.producer_epoch = pe.id

where

c.name = $1
and txn_d.status = 'BEGIN'
and txn_d.started_at is not null
and pe.epoch = (select max(latest.epoch) from producer_epoch latest where latest.producer = p.id)
and ($2 - cast(strftime('%s', txn_d.started_at) as integer) - 1) * 1000
    >= txn_d.transaction_timeout_ms;
