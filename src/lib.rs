pub mod config;
pub mod document;
pub mod notification;
pub mod records;
