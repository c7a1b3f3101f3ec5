//! A consumer's group generation: the number the group coordinator gives each round of
//! assignments, increasing by one at every rebalance. It is the fencing token Kafka itself uses
//! (a commit from an older generation is refused, and KIP-447's transactional offset commits
//! carry it): a member that kept working after it lost its partitions — paused by a long GC or
//! a `kill -STOP`, its session expired meanwhile — still holds the older generation.
//!
//! librdkafka knows it but does not hand it out on its own (nor does the rdkafka crate): it is
//! part of the consumer group metadata a transactional producer sends, so it is read from that
//! metadata's serialised form, `"CGMDv2:"` then the generation as a native-endian `i32`
//! (`rd_kafka_consumer_group_metadata_write`, librdkafka 2.12).

use std::ffi::c_void;

use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

const MAGIC: &[u8] = b"CGMDv2:";

/// The generation of the group round this consumer last joined, or `None` when it has not
/// joined one (or is not a group consumer). Blocks briefly (librdkafka answers it from its main
/// thread); calling it from a rebalance callback is fine.
pub fn of<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> Option<i32> {
    let client = consumer.client().native_ptr();
    // SAFETY: `client` is the live handle of `consumer`, borrowed for this call. The metadata
    // returned (or null) is ours to destroy; `write` gives a buffer of `size` bytes allocated
    // by librdkafka, copied out before it is freed with `rd_kafka_mem_free`, and an error
    // object (or null) that is ours to destroy. Nothing is kept past this block.
    let bytes = unsafe {
        let metadata = rd::rd_kafka_consumer_group_metadata(client);
        if metadata.is_null() {
            return None;
        }
        let mut buffer: *mut c_void = std::ptr::null_mut();
        let mut size: usize = 0;
        let error = rd::rd_kafka_consumer_group_metadata_write(metadata, &mut buffer, &mut size);
        rd::rd_kafka_consumer_group_metadata_destroy(metadata);
        if !error.is_null() {
            rd::rd_kafka_error_destroy(error);
            return None;
        }
        if buffer.is_null() {
            return None;
        }
        let bytes = std::slice::from_raw_parts(buffer.cast::<u8>(), size).to_vec();
        rd::rd_kafka_mem_free(client, buffer);
        bytes
    };
    parse(&bytes)
}

/// The generation in serialised group metadata; `None` for another format or no generation
/// yet (librdkafka's -1).
fn parse(bytes: &[u8]) -> Option<i32> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let generation = i32::from_ne_bytes(rest.get(..4)?.try_into().ok()?);
    (generation >= 0).then_some(generation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generation_is_read_after_the_magic_and_nothing_else_is_taken_for_one() {
        let mut bytes = MAGIC.to_vec();
        bytes.extend(7i32.to_ne_bytes());
        bytes.extend(b"group\0member\0\x01");
        assert_eq!(parse(&bytes), Some(7));
        let mut none_yet = MAGIC.to_vec();
        none_yet.extend((-1i32).to_ne_bytes());
        assert_eq!(parse(&none_yet), None);
        assert_eq!(parse(b"CGMDv1:\x07\0\0\0"), None, "another format");
        assert_eq!(parse(b"CGMDv2:\x07\0"), None, "cut short");
        assert_eq!(parse(b""), None);
    }
}
