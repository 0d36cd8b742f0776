//! End-to-end tests of the data server over real HTTP on loopback.

mod common;

mod attachments;
mod auth;
mod basics;
mod cases;
mod connections;
mod discovery;
mod durability;
#[cfg(unix)]
mod files;
mod log;
mod messages;
mod operator;
mod plaintext;
mod register;
mod smtp;
mod tls;
mod webhook;
