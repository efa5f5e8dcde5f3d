//! `cmdscope:plugin@0.2.0` (`wit/plugin.wit`): 0.1 plus `resolver.resolve-batch`.

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

super::context_conversion!(super::v0_2::resolver_world::cmdscope::plugin::types);
