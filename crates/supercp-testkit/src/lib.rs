//! Test support shared by every crate's integration tests: temporary prefixes, free loopback
//! ports, and launchers for the real services of the stack (PostgreSQL, nginx, php-fpm, PowerDNS) and
//! for the Git servers an agent pulls from (sshd, nginx + git-http-backend).
//!
//! It never mocks a service: a launcher starts the Debian binary under a temp prefix, on
//! 127.0.0.1, as a child of the test. When a binary is missing, `require` fails the test under
//! `CI=true` and otherwise skips it loudly on stderr.

pub mod bind;
pub mod git_servers;
pub mod pdns;
pub mod pebble;
pub mod postgres;
pub mod services;
pub mod web;
