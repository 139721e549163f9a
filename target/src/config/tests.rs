//! Unit tests of targets.conf parsing.
