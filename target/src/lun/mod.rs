//! (being written)
pub mod settings;
pub use settings::{LunSettings, SenseFormat};
