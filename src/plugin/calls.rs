//! Calls into a plugin, whichever interface version it speaks: one enum per world, one arm
//! per version, the engine's types in and out. The only place that knows each version's
//! generated functions.

use std::sync::Arc;

use wasmtime::component::InstancePre;

use super::bindings::{v0_1, v0_2};
use super::instances::{CallFailure, Instances};
use super::sandbox::{CallLimits, Sandbox};
use super::store::PluginState;
use super::{LoadError, PluginSettings, root_cause};
use crate::resolve::UserContext;

/// An interface version a component was built against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    V0_1,
    V0_2,
}

impl Version {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Version::V0_1 => "0.1",
            Version::V0_2 => "0.2",
        }
    }
}

/// What `info` answered, before it is checked.
pub(crate) struct RawInfo {
    pub name: String,
    pub version: String,
    /// Profiles (resolvers) or locales (translators).
    pub items: Vec<String>,
}

fn link(e: wasmtime::Error) -> LoadError {
    LoadError::Link(root_cause(&e))
}

pub(crate) enum ResolverCalls {
    V0_1(Instances<v0_1::resolver_world::ResolverPlugin>),
    V0_2(Instances<v0_2::resolver_world::ResolverPlugin>),
}

impl ResolverCalls {
    pub(crate) fn new(
        sandbox: Arc<Sandbox>,
        pre: InstancePre<PluginState>,
        file: &str,
        version: Version,
        first: CallLimits,
    ) -> Result<ResolverCalls, LoadError> {
        Ok(match version {
            Version::V0_1 => ResolverCalls::V0_1(Instances::new(
                sandbox,
                v0_1::resolver_world::ResolverPluginPre::new(pre).map_err(link)?,
                file,
                first,
            )),
            Version::V0_2 => ResolverCalls::V0_2(Instances::new(
                sandbox,
                v0_2::resolver_world::ResolverPluginPre::new(pre).map_err(link)?,
                file,
                first,
            )),
        })
    }

    pub(crate) fn info(&self) -> Result<RawInfo, CallFailure> {
        Ok(match self {
            ResolverCalls::V0_1(i) => {
                let info = i.call(|b, s| b.cmdscope_plugin_resolver().call_info(s))?;
                RawInfo {
                    name: info.name,
                    version: info.version,
                    items: info.profiles,
                }
            }
            ResolverCalls::V0_2(i) => {
                let info = i.call(|b, s| b.cmdscope_plugin_resolver().call_info(s))?;
                RawInfo {
                    name: info.name,
                    version: info.version,
                    items: info.profiles,
                }
            }
        })
    }

    pub(crate) fn resolve(&self, ctx: &UserContext) -> Result<Result<String, String>, CallFailure> {
        match self {
            ResolverCalls::V0_1(i) => {
                let ctx = v0_1::wit::UserContext::from(ctx);
                i.call(|b, s| b.cmdscope_plugin_resolver().call_resolve(s, &ctx))
            }
            ResolverCalls::V0_2(i) => {
                let ctx = v0_2::wit::UserContext::from(ctx);
                i.call(|b, s| b.cmdscope_plugin_resolver().call_resolve(s, &ctx))
            }
        }
    }

    /// Many users: one crossing with 0.2's `resolve-batch`; a call each with 0.1. A wrong
    /// number of answers is malformed.
    pub(crate) fn resolve_batch(
        &self,
        ctxs: &[&UserContext],
    ) -> Result<Vec<Result<String, String>>, CallFailure> {
        let answers = match self {
            ResolverCalls::V0_1(_) => return ctxs.iter().map(|c| self.resolve(c)).collect(),
            ResolverCalls::V0_2(i) => {
                let ctxs: Vec<v0_2::wit::UserContext> = ctxs
                    .iter()
                    .map(|c| v0_2::wit::UserContext::from(*c))
                    .collect();
                i.call(|b, s| b.cmdscope_plugin_resolver().call_resolve_batch(s, &ctxs))?
            }
        };
        if answers.len() != ctxs.len() {
            return Err(CallFailure::Malformed(format!(
                "{} answers for {} users",
                answers.len(),
                ctxs.len()
            )));
        }
        Ok(answers)
    }

    pub(crate) fn configure(
        &self,
        name: &str,
        settings: &PluginSettings,
    ) -> Result<(), CallFailure> {
        match self {
            ResolverCalls::V0_1(i) => i.configure(name, settings),
            ResolverCalls::V0_2(i) => i.configure(name, settings),
        }
    }

    pub(crate) fn limits(&self) -> CallLimits {
        match self {
            ResolverCalls::V0_1(i) => i.limits(),
            ResolverCalls::V0_2(i) => i.limits(),
        }
    }

    pub(crate) fn instance_memory(&self) -> Option<usize> {
        match self {
            ResolverCalls::V0_1(i) => i.instance_memory(),
            ResolverCalls::V0_2(i) => i.instance_memory(),
        }
    }

    pub(crate) fn max_output(&self) -> usize {
        match self {
            ResolverCalls::V0_1(i) => i.max_output(),
            ResolverCalls::V0_2(i) => i.max_output(),
        }
    }
}

pub(crate) enum TranslatorCalls {
    V0_1(Instances<v0_1::translator_world::TranslatorPlugin>),
    V0_2(Instances<v0_2::translator_world::TranslatorPlugin>),
}

impl TranslatorCalls {
    pub(crate) fn new(
        sandbox: Arc<Sandbox>,
        pre: InstancePre<PluginState>,
        file: &str,
        version: Version,
        first: CallLimits,
    ) -> Result<TranslatorCalls, LoadError> {
        Ok(match version {
            Version::V0_1 => TranslatorCalls::V0_1(Instances::new(
                sandbox,
                v0_1::translator_world::TranslatorPluginPre::new(pre).map_err(link)?,
                file,
                first,
            )),
            Version::V0_2 => TranslatorCalls::V0_2(Instances::new(
                sandbox,
                v0_2::translator_world::TranslatorPluginPre::new(pre).map_err(link)?,
                file,
                first,
            )),
        })
    }

    pub(crate) fn info(&self) -> Result<RawInfo, CallFailure> {
        Ok(match self {
            TranslatorCalls::V0_1(i) => {
                let info = i.call(|b, s| b.cmdscope_plugin_translator().call_info(s))?;
                RawInfo {
                    name: info.name,
                    version: info.version,
                    items: info.locales,
                }
            }
            TranslatorCalls::V0_2(i) => {
                let info = i.call(|b, s| b.cmdscope_plugin_translator().call_info(s))?;
                RawInfo {
                    name: info.name,
                    version: info.version,
                    items: info.locales,
                }
            }
        })
    }

    pub(crate) fn translate(&self, key: &str, locale: &str) -> Result<Option<String>, CallFailure> {
        match self {
            TranslatorCalls::V0_1(i) => i.call(|b, s| {
                b.cmdscope_plugin_translator()
                    .call_translate(s, key, locale)
            }),
            TranslatorCalls::V0_2(i) => i.call(|b, s| {
                b.cmdscope_plugin_translator()
                    .call_translate(s, key, locale)
            }),
        }
    }

    pub(crate) fn translate_batch(
        &self,
        keys: &[String],
        locale: &str,
    ) -> Result<Vec<Option<String>>, CallFailure> {
        match self {
            TranslatorCalls::V0_1(i) => i.call(|b, s| {
                b.cmdscope_plugin_translator()
                    .call_translate_batch(s, keys, locale)
            }),
            TranslatorCalls::V0_2(i) => i.call(|b, s| {
                b.cmdscope_plugin_translator()
                    .call_translate_batch(s, keys, locale)
            }),
        }
    }

    pub(crate) fn configure(
        &self,
        name: &str,
        settings: &PluginSettings,
    ) -> Result<(), CallFailure> {
        match self {
            TranslatorCalls::V0_1(i) => i.configure(name, settings),
            TranslatorCalls::V0_2(i) => i.configure(name, settings),
        }
    }

    pub(crate) fn limits(&self) -> CallLimits {
        match self {
            TranslatorCalls::V0_1(i) => i.limits(),
            TranslatorCalls::V0_2(i) => i.limits(),
        }
    }

    pub(crate) fn instance_memory(&self) -> Option<usize> {
        match self {
            TranslatorCalls::V0_1(i) => i.instance_memory(),
            TranslatorCalls::V0_2(i) => i.instance_memory(),
        }
    }

    pub(crate) fn max_output(&self) -> usize {
        match self {
            TranslatorCalls::V0_1(i) => i.max_output(),
            TranslatorCalls::V0_2(i) => i.max_output(),
        }
    }
}
