//! The calls the host makes into a plugin, whichever interface version it speaks: the
//! engine's types in and out. Each version's module (`bindings/since_v*.rs`) implements these
//! traits for its generated bindings; nothing else knows a version's functions.

use super::PluginSettings;
use super::instances::{CallFailure, Instances, WorldBindings};
use super::sandbox::CallLimits;
use crate::resolve::UserContext;

/// What `info` answered, before it is checked.
pub(crate) struct RawInfo {
    pub name: String,
    pub version: String,
    /// Profiles (resolvers) or locales (translators).
    pub items: Vec<String>,
}

/// The instance pool of one plugin, the same for every world and version.
pub(crate) trait Pool: Send + Sync {
    /// Names the plugin and gives it its settings and limits (see `Instances::configure`).
    fn configure(&self, name: &str, settings: &PluginSettings) -> Result<(), CallFailure>;
    /// The limits calls run within now.
    fn limits(&self) -> CallLimits;
    /// Linear memory an idle instance holds.
    fn instance_memory(&self) -> Option<usize>;
    /// Largest answer accepted.
    fn max_output(&self) -> usize;
}

impl<W: WorldBindings> Pool for Instances<W> {
    fn configure(&self, name: &str, settings: &PluginSettings) -> Result<(), CallFailure> {
        Instances::configure(self, name, settings)
    }
    fn limits(&self) -> CallLimits {
        Instances::limits(self)
    }
    fn instance_memory(&self) -> Option<usize> {
        Instances::instance_memory(self)
    }
    fn max_output(&self) -> usize {
        Instances::max_output(self)
    }
}

/// A resolver's calls.
pub(crate) trait ResolverCalls: Pool {
    fn info(&self) -> Result<RawInfo, CallFailure>;
    fn resolve(&self, ctx: &UserContext) -> Result<Result<String, String>, CallFailure>;
    /// Many users at once; a version without a batch call asks user by user. A wrong number
    /// of answers is malformed (see [`same_count`]).
    fn resolve_batch(
        &self,
        ctxs: &[&UserContext],
    ) -> Result<Vec<Result<String, String>>, CallFailure> {
        ctxs.iter().map(|c| self.resolve(c)).collect()
    }
}

/// A translator's calls.
pub(crate) trait TranslatorCalls: Pool {
    fn info(&self) -> Result<RawInfo, CallFailure>;
    fn translate(&self, key: &str, locale: &str) -> Result<Option<String>, CallFailure>;
    fn translate_batch(
        &self,
        keys: &[String],
        locale: &str,
    ) -> Result<Vec<Option<String>>, CallFailure>;
}

/// A batch's answers, refused as malformed unless there is one per question.
pub(crate) fn same_count<T>(answers: Vec<T>, asked: usize) -> Result<Vec<T>, CallFailure> {
    if answers.len() == asked {
        Ok(answers)
    } else {
        Err(CallFailure::Malformed(format!(
            "{} answers for {asked} questions",
            answers.len()
        )))
    }
}
