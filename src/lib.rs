//! cmdscope keeps Telegram bot command menus right for every user.
//!
//! Data flows one way: config and user context -> profile -> command lists -> desired menus ->
//! diff -> delivery. See `ARCHITECTURE.md` for the code map.

pub mod config;
pub mod limits;
pub mod scope;
