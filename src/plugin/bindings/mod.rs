//! The interface versions the host speaks, one module each (as Zed's extension host keeps
//! `since_vX_Y_Z.rs`): a module owns its `bindgen!`, its `host` interface, its linking and the
//! conversion of its types to the engine's, and implements the version-free call traits of
//! `calls.rs`. `since_v0_2` is `wit/plugin.wit` (current), `since_v0_1` is `wit/v0.1/`
//! (frozen). A component's version is told by its exports. Adding a version is one module and
//! one line in [`VERSIONS`].

use std::sync::Arc;

use wasmtime::component::{InstancePre, Linker};

use super::calls::{ResolverCalls, TranslatorCalls};
use super::sandbox::{CallLimits, Sandbox};
use super::store::PluginState;
use super::{LoadError, World};

pub(crate) mod since_v0_1;
pub(crate) mod since_v0_2;

/// Every version this host speaks, newest first.
pub(crate) static VERSIONS: [&dyn Interface; 2] = [&since_v0_2::Since, &since_v0_1::Since];

/// One interface version, as the host uses it.
pub(crate) trait Interface: Sync {
    /// `major.minor` (a patch release is compatible).
    fn version(&self) -> &'static str;
    /// The export that makes a component a resolver of this version.
    fn resolver_export(&self) -> &'static str;
    /// The export that makes a component a translator of this version.
    fn translator_export(&self) -> &'static str;
    /// Links this version's `host` interface.
    fn add_host(&self, linker: &mut Linker<PluginState>) -> wasmtime::Result<()>;
    /// The calls of a resolver of this version, over instances of `pre`.
    fn resolver(
        &self,
        sandbox: Arc<Sandbox>,
        pre: InstancePre<PluginState>,
        file: &str,
        first: CallLimits,
    ) -> Result<Box<dyn ResolverCalls>, LoadError>;
    /// The calls of a translator of this version, over instances of `pre`.
    fn translator(
        &self,
        sandbox: Arc<Sandbox>,
        pre: InstancePre<PluginState>,
        file: &str,
        first: CallLimits,
    ) -> Result<Box<dyn TranslatorCalls>, LoadError>;
}

/// The version plugins are built against today.
pub(crate) fn latest() -> &'static dyn Interface {
    VERSIONS[0]
}

/// Links every version's `host` interface.
pub(crate) fn add_hosts(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    VERSIONS.iter().try_for_each(|v| v.add_host(linker))
}

/// The cmdscope interfaces a plugin may import: each version's `host` and `types`.
pub(crate) fn plugin_imports() -> Vec<String> {
    VERSIONS
        .iter()
        .flat_map(|v| ["host", "types"].map(|i| format!("cmdscope:plugin/{i}@{}.", v.version())))
        .collect()
}

/// The world and version a component's exports say (a resolver export wins; newest first).
pub(crate) fn detect(exports: &[String]) -> Option<(World, &'static dyn Interface)> {
    let exported = |name: &str| exports.iter().any(|e| e == name);
    VERSIONS
        .iter()
        .find(|v| exported(v.resolver_export()))
        .map(|v| (World::Resolver, *v))
        .or_else(|| {
            VERSIONS
                .iter()
                .find(|v| exported(v.translator_export()))
                .map(|v| (World::Translator, *v))
        })
}

pub(crate) fn link_error(e: wasmtime::Error) -> LoadError {
    LoadError::Link(super::root_cause(&e))
}

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
        if !VERSIONS
            .iter()
            .any(|v| v.version() == major_minor.join("."))
        {
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
                speaks: VERSIONS
                    .iter()
                    .rev()
                    .map(|v| format!("{}.x", v.version()))
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

/// The `host` interface of one version, served from the store: a log line, a setting.
macro_rules! host_interface {
    ($host:path) => {
        use $host as host;

        impl host::Host for crate::plugin::store::PluginState {
            fn log(&mut self, level: host::LogLevel, message: String) {
                use crate::plugin::store::Level;
                let level = match level {
                    host::LogLevel::Debug => Level::Debug,
                    host::LogLevel::Info => Level::Info,
                    host::LogLevel::Warn => Level::Warn,
                    host::LogLevel::Error => Level::Error,
                };
                self.write_log(level, &message);
            }

            fn setting(&mut self, key: String) -> Option<String> {
                self.settings.get(&key).cloned()
            }
        }
    };
}
pub(crate) use host_interface;

/// `WorldBindings` (instantiable from an `InstancePre`) for one generated world.
macro_rules! world_bindings {
    ($bindings:path, $pre:path) => {
        impl crate::plugin::instances::WorldBindings for $bindings {
            type Pre = $pre;
            fn instantiate(
                pre: &Self::Pre,
                store: &mut wasmtime::Store<crate::plugin::store::PluginState>,
            ) -> wasmtime::Result<Self> {
                pre.instantiate(store)
            }
        }
    };
}
pub(crate) use world_bindings;
