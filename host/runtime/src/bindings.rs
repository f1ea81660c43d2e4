//! Host bindings of `wit/`, generated once for every interface a connector may export.
//!
//! Calls into the guest are async (the instance runs on a fiber and yields to tokio at
//! every epoch tick and host wait), and so are the imports that wait on the network:
//! a pipeline waiting for input holds no thread. Logs, metrics and the record helpers
//! return at once and stay plain functions.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "host-view",
    imports: {
        "weir:connector/kafka": async,
        "weir:connector/http": async,
        "weir:connector/sql": async,
        "weir:connector/objects": async,
        "weir:connector/kinesis": async,
    },
    exports: { default: async },
    with: {
        "weir:connector/kafka.consumer": crate::io::kafka::Consumer,
        "weir:connector/kafka.producer": crate::io::kafka::Producer,
        "weir:connector/sql.connection": crate::io::sql::Connection,
        "weir:connector/sql.replication": crate::io::sql::Replication,
        "weir:connector/kinesis.shard-reader": crate::io::kinesis::ShardReader,
    },
});
