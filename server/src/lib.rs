//! Pipebook's engine: the stages of the pipeline, laid out the way data flows —
//! [`streamer`] → [`producer`] → Kafka ([`kafka`]) → [`sentiment`] → [`aggregate`] / [`index`] — plus the [`pipeline`] that runs them and the
//! [`api`] that controls them, and [`trace`], which follows one review through all of them.

pub mod access;
pub mod aggregate;
pub mod api;
pub mod bench;
pub mod bounds;
pub mod clock;
pub mod config;
pub mod error;
pub mod faults;
pub mod feed;
pub mod histogram;
pub mod incidents;
pub mod index;
pub mod kafka;
pub mod lab;
pub mod last_config;
pub mod lesson;
pub mod members;
pub mod metrics;
pub mod ops;
pub mod pipeline;
pub mod producer;
pub mod rates;
pub mod reach;
pub mod records;
pub mod saved;
pub mod secret;
pub mod sentiment;
pub mod stage;
pub mod stage_config;
pub mod stages;
pub mod streamer;
pub mod sync;
pub mod trace;
pub mod web;
pub mod worker;
