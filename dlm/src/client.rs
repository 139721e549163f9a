//! The client library (being written).
