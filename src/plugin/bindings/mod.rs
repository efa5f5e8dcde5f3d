//! Typed host bindings, one module per interface version the host speaks (as Zed's
//! extension host does), each converting at the edge so the rest of the engine sees only its
//! own types: `v0_2` (`wit/plugin.wit`, the current version) and `v0_1` (`wit/v0.1/`, frozen).
//! A component's version is told by its exports.

pub(crate) mod v0_1;
pub(crate) mod v0_2;

/// The interface versions this host speaks, as `major.minor` (a patch release is compatible).
pub(crate) const SPOKEN_VERSIONS: &[&str] = &["0.1", "0.2"];

/// The export names that tell a component's world and version.
pub(crate) const RESOLVER_EXPORTS: [&str; 2] = [
    "cmdscope:plugin/resolver@0.2.0",
    "cmdscope:plugin/resolver@0.1.0",
];
pub(crate) const TRANSLATOR_EXPORTS: [&str; 2] = [
    "cmdscope:plugin/translator@0.2.0",
    "cmdscope:plugin/translator@0.1.0",
];

/// A component that imports or exports `cmdscope:plugin/...@X` for a version this host does
/// not speak is refused with both versions named, before any other check blames its imports.
pub(crate) fn check_interface_versions(
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
) -> Result<(), super::LoadError> {
    let ty = component.component_type();
    let names = ty
        .imports(engine)
        .map(|(n, _)| n)
        .chain(ty.exports(engine).map(|(n, _)| n));
    for name in names {
        let Some(rest) = name.strip_prefix("cmdscope:plugin/") else {
            continue;
        };
        let version = rest.split_once('@').map(|(_, v)| v).unwrap_or("");
        let major_minor: Vec<&str> = version.splitn(3, '.').take(2).collect();
        if !SPOKEN_VERSIONS.contains(&major_minor.join(".").as_str()) {
            return Err(super::LoadError::InterfaceVersion {
                interface: super::clip_display(name, 100),
                found: super::clip_display(
                    if version.is_empty() {
                        "(none)"
                    } else {
                        version
                    },
                    40,
                ),
                speaks: SPOKEN_VERSIONS
                    .iter()
                    .map(|v| format!("{v}.x"))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    Ok(())
}

/// The engine's `UserContext` into one version's generated `user-context`: every version has
/// the same shape, and each gets this conversion.
macro_rules! context_conversion {
    ($wit:path) => {
        pub(crate) use $wit as wit;

        impl From<&crate::resolve::UserContext> for wit::UserContext {
            fn from(ctx: &crate::resolve::UserContext) -> Self {
                use crate::resolve::FlagValue;
                use crate::scope::ChatType;
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
    };
}
pub(crate) use context_conversion;
