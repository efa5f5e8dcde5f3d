//! Typed host bindings of `wit/plugin.wit` (version 0.1), and conversions at the edge so the
//! rest of the engine sees only its own types. A future `@0.2` gets a sibling module here and
//! converts to the same engine types (as Zed's extension host does per API version).

use crate::resolve::{FlagValue, UserContext};
use crate::scope::ChatType;

pub(crate) mod resolver_world {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "resolver-plugin",
    });
}

pub(crate) mod translator_world {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "translator-plugin",
        with: {
            "cmdscope:plugin/host": super::resolver_world::cmdscope::plugin::host,
        },
    });
}

pub(crate) use resolver_world::cmdscope::plugin::host;
pub(crate) use resolver_world::cmdscope::plugin::types as wit;

/// The export names that tell a component's world.
pub(crate) const RESOLVER_EXPORT: &str = "cmdscope:plugin/resolver@0.1.0";
pub(crate) const TRANSLATOR_EXPORT: &str = "cmdscope:plugin/translator@0.1.0";

impl From<&UserContext> for wit::UserContext {
    fn from(ctx: &UserContext) -> Self {
        wit::UserContext {
            user_id: ctx.user_id,
            chat_id: ctx.chat_id,
            chat_type: match ctx.chat_type {
                ChatType::Private => wit::ChatType::Private,
                ChatType::Group => wit::ChatType::Group,
                ChatType::Supergroup => wit::ChatType::Supergroup,
            },
            language_code: ctx.language_code.clone(),
            // A BTreeMap: sorted by name, names unique, as the WIT promises.
            flags: ctx
                .flags
                .iter()
                .map(|(name, value)| wit::Flag {
                    name: name.clone(),
                    value: match value {
                        FlagValue::Bool(b) => wit::FlagValue::Boolean(*b),
                        FlagValue::Int(i) => wit::FlagValue::Integer(*i),
                        FlagValue::Text(t) => wit::FlagValue::Text(t.clone()),
                    },
                })
                .collect(),
            is_chat_admin: ctx.is_chat_admin,
        }
    }
}
