//! hydra distributed lock manager (issue 5): not yet written.
