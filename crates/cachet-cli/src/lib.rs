//! The library half of the `cachet` command: its command-line definition, its errors and
//! the demo, so that tests can drive them without spawning the binary.
#![forbid(unsafe_code)]

pub mod bench;
pub mod cli;
pub mod demo;
pub mod error;
pub mod render;
