//! hydra multipath aggregator.
//!
//! `export`: how a map is served to its users — the `BlockDevice` trait every export
//! serves from, a file-backed device, and the NBD server (DESIGN.md, Data paths → Export).

pub mod export;
