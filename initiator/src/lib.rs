//! hydra initiator (issue 4): not yet written.
