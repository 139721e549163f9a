//! hydra multipath aggregator: not yet written.
