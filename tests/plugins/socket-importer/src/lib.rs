//! Opens a TCP connection through wasi:sockets: the host links the socket interfaces with
//! functions that trap, so the plugin loads and its call fails, naming the denied function.
use cmdscope_plugin_sdk::{Resolver, ResolverInfo, UserContext, export_resolver};

struct Plugin;

impl Resolver for Plugin {
    fn info() -> ResolverInfo {
        ResolverInfo::new("socket-importer", "0.1.0", &["guest", "admin"])
    }

    fn resolve(ctx: UserContext) -> Result<String, String> {
        let _ = ctx;
        match std::net::TcpStream::connect("127.0.0.1:9") {
            Ok(_) => Ok("admin".into()),
            Err(e) => Err(e.to_string()),
        }
    }
}

export_resolver!(Plugin);
