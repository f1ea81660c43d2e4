//! Host bindings of `wit/`, generated once for every interface a connector may export.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "host-view",
    with: {
        "weir:connector/kafka.consumer": crate::io::kafka::Consumer,
        "weir:connector/kafka.producer": crate::io::kafka::Producer,
        "weir:connector/sql.connection": crate::io::sql::Connection,
    },
});
