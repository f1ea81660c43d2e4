//! Host bindings of `wit/`, generated once for every interface a connector may export.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "host-view",
});
