//! Byte encodings (being written).
