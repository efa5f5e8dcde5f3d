//! cmdscope keeps Telegram bot command menus right for every user.
//!
//! Data flows one way: config and user context -> profile -> command lists -> desired menus ->
//! diff -> delivery. See `ARCHITECTURE.md` for the code map.

pub mod audit;
pub mod backend;
pub mod catalog;
pub mod coalesce;
pub mod config;
pub mod deliver;
#[cfg(feature = "emulator")]
pub mod emulator;
pub mod engine;
pub mod explain;
pub mod host;
pub mod impact;
pub mod limits;
pub mod manager;
#[cfg(feature = "http")]
mod memory;
pub mod menu;
pub mod metrics;
pub mod output_cache;
pub mod plan;
#[cfg(feature = "redis")]
pub mod redis;
pub mod release;
pub mod resolve;
pub mod rollout;
pub mod scope;
pub mod sources;
pub mod state;
pub mod suggest;
pub mod sync;

pub use config::Config;
pub use deliver::{ApiError, BotApi};
pub use engine::{Engine, Resolution};
pub use host::{Host, HostEvent};
pub use manager::{CommandManager, SetupReport, Status, UserOutcome};
pub use menu::{BotCommand, Menu};
pub use resolve::{FlagValue, Resolver, Translator, UserContext};
pub use scope::{ChatType, Lang, ListKey, Scope};
pub mod plugin;
