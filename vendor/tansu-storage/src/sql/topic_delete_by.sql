-- -*- mode: sql; sql-product: postgres; -*-
-- Copyright ⓒ 2024-2025 Peter Morgan <peter.james.morgan@gmail.com>
--
-- Licensed under the Apache License, Version 2.0 (the "License");
-- you may not use this file except in compliance with the License.
-- You may obtain a copy of the License at
--
-- http://www.apache.org/licenses/LICENSE-2.0
--
-- Unless required by applicable law or agreed to in writing, software
-- distributed under the License is distributed on an "AS IS" BASIS,
-- WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
-- See the License for the specific language governing permissions and
-- limitations under the License.

-- Pipebook patch (vendor/PATCHES.md, "DeleteTopics"): the topic whose id is the named
-- one's; upstream matched `topic.cluster`, which deleted every topic of the cluster.
delete from topic
where topic.id in (
    select t.id
    from cluster c
    join topic t on t.cluster = c.id
    where c.name = $1
    and t.name = $2
);
