//! `cmdscope:plugin@0.1.0` (`wit/v0.1/plugin.wit`), frozen: plugins built against it keep
//! loading and answering.

pub(crate) mod resolver_world {
    wasmtime::component::bindgen!({
        path: "wit/v0.1",
        world: "resolver-plugin",
    });
}

pub(crate) mod translator_world {
    wasmtime::component::bindgen!({
        path: "wit/v0.1",
        world: "translator-plugin",
        with: {
            "cmdscope:plugin/host": super::resolver_world::cmdscope::plugin::host,
        },
    });
}

pub(crate) use resolver_world::cmdscope::plugin::host;

super::context_conversion!(super::v0_1::resolver_world::cmdscope::plugin::types);
