//! `cmdscope:plugin@0.2.0` (`wit/plugin.wit`), the current version: 0.1 plus
//! `resolver.resolve-batch`.

use std::sync::Arc;

use wasmtime::component::{HasSelf, InstancePre, Linker};

use super::{Interface, link_error};
use crate::plugin::LoadError;
use crate::plugin::calls::{RawInfo, ResolverCalls, TranslatorCalls, same_count};
use crate::plugin::instances::{CallFailure, Instances};
use crate::plugin::sandbox::{CallLimits, Sandbox};
use crate::plugin::store::PluginState;
use crate::resolve::UserContext;

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

super::context_conversion!(self::resolver_world::cmdscope::plugin::types);
super::host_interface!(self::resolver_world::cmdscope::plugin::host);
super::world_bindings!(
    resolver_world::ResolverPlugin,
    resolver_world::ResolverPluginPre<PluginState>
);
super::world_bindings!(
    translator_world::TranslatorPlugin,
    translator_world::TranslatorPluginPre<PluginState>
);

type Resolver = Instances<resolver_world::ResolverPlugin>;
type Translator = Instances<translator_world::TranslatorPlugin>;

/// This version, for [`super::VERSIONS`].
pub(crate) struct Since;

impl Interface for Since {
    fn version(&self) -> &'static str {
        "0.2"
    }
    fn resolver_export(&self) -> &'static str {
        "cmdscope:plugin/resolver@0.2.0"
    }
    fn translator_export(&self) -> &'static str {
        "cmdscope:plugin/translator@0.2.0"
    }
    fn add_host(&self, linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
        host::add_to_linker::<PluginState, HasSelf<PluginState>>(linker, |s| s)
    }
    fn resolver(
        &self,
        sandbox: Arc<Sandbox>,
        pre: InstancePre<PluginState>,
        file: &str,
        first: CallLimits,
    ) -> Result<Box<dyn ResolverCalls>, LoadError> {
        let pre = resolver_world::ResolverPluginPre::new(pre).map_err(link_error)?;
        Ok(Box::new(Resolver::new(sandbox, pre, file, first)))
    }
    fn translator(
        &self,
        sandbox: Arc<Sandbox>,
        pre: InstancePre<PluginState>,
        file: &str,
        first: CallLimits,
    ) -> Result<Box<dyn TranslatorCalls>, LoadError> {
        let pre = translator_world::TranslatorPluginPre::new(pre).map_err(link_error)?;
        Ok(Box::new(Translator::new(sandbox, pre, file, first)))
    }
}

impl ResolverCalls for Resolver {
    fn info(&self) -> Result<RawInfo, CallFailure> {
        let info = self.call(|b, s| b.cmdscope_plugin_resolver().call_info(s))?;
        Ok(RawInfo {
            name: info.name,
            version: info.version,
            items: info.profiles,
        })
    }

    fn resolve(&self, ctx: &UserContext) -> Result<Result<String, String>, CallFailure> {
        let ctx = wit::UserContext::from(ctx);
        self.call(|b, s| b.cmdscope_plugin_resolver().call_resolve(s, &ctx))
    }

    /// One crossing for the whole page.
    fn resolve_batch(
        &self,
        ctxs: &[&UserContext],
    ) -> Result<Vec<Result<String, String>>, CallFailure> {
        let wit: Vec<wit::UserContext> = ctxs.iter().map(|c| wit::UserContext::from(*c)).collect();
        let answers = self.call(|b, s| b.cmdscope_plugin_resolver().call_resolve_batch(s, &wit))?;
        same_count(answers, ctxs.len())
    }
}

impl TranslatorCalls for Translator {
    fn info(&self) -> Result<RawInfo, CallFailure> {
        let info = self.call(|b, s| b.cmdscope_plugin_translator().call_info(s))?;
        Ok(RawInfo {
            name: info.name,
            version: info.version,
            items: info.locales,
        })
    }

    fn translate(&self, key: &str, locale: &str) -> Result<Option<String>, CallFailure> {
        self.call(|b, s| {
            b.cmdscope_plugin_translator()
                .call_translate(s, key, locale)
        })
    }

    fn translate_batch(
        &self,
        keys: &[String],
        locale: &str,
    ) -> Result<Vec<Option<String>>, CallFailure> {
        self.call(|b, s| {
            b.cmdscope_plugin_translator()
                .call_translate_batch(s, keys, locale)
        })
    }
}
