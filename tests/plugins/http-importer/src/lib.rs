//! Sends an HTTP request through `wasi:http/outgoing-handler`: the host never links wasi:http,
//! so it must refuse to load this plugin, naming the import.
use cmdscope_plugin_sdk::{Resolver, ResolverInfo, UserContext, export_resolver};
use wasip2::http::outgoing_handler::handle;
use wasip2::http::types::{Fields, OutgoingRequest};

struct Plugin;

impl Resolver for Plugin {
    fn info() -> ResolverInfo {
        ResolverInfo::new("http-importer", "0.1.0", &["guest", "admin"])
    }

    fn resolve(_: UserContext) -> Result<String, String> {
        let request = OutgoingRequest::new(Fields::new());
        match handle(request, None) {
            Ok(_) => Ok("admin".into()),
            Err(e) => Err(format!("{e:?}")),
        }
    }
}

export_resolver!(Plugin);
