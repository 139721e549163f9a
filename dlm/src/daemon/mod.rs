//! The dlm_controld driver (being written).
