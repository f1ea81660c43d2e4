//! Emits the `wit_bindgen::generate!` call for the one world a connector targets.
//!
//! The SDK cannot generate all three worlds itself: each generated world embeds a
//! component-type section, and a plugin that linked all three would claim exports it does
//! not have. So the world is generated in the plugin crate, with the WIT inlined here (as
//! Spin's SDK does) so authors need no copy of `wit/`.

use proc_macro::{TokenStream, TokenTree};

const WIT: &str = include_str!("../../../wit/connector.wit");

/// `__export!(world, Type)`: called through `weir_guest::export_*!`, not directly.
#[proc_macro]
pub fn __export(input: TokenStream) -> TokenStream {
    let mut tokens = input.into_iter();
    let world = match tokens.next() {
        Some(TokenTree::Ident(ident)) => ident.to_string(),
        other => return error(&format!("expected a world name, found {other:?}")),
    };
    match tokens.next() {
        Some(TokenTree::Punct(p)) if p.as_char() == ',' => {}
        _ => return error("expected `,` after the world name"),
    }
    let ty: TokenStream = tokens.collect();
    if ty.is_empty() {
        return error("expected the connector type");
    }
    let glue = match world.as_str() {
        "batch_source" => BATCH_GLUE.to_string(),
        "stream_source" => STREAM_GLUE.to_string(),
        "sink" => SINK_GLUE.to_string(),
        "transactional_sink" => format!("{SINK_GLUE}{TRANSACTIONAL_GLUE}"),
        "transform" => TRANSFORM_GLUE.to_string(),
        other => return error(&format!("unknown world `{other}`")),
    };
    let code = format!(
        r#"
        #[doc(hidden)]
        type __WeirConnector = {ty};
        #[doc(hidden)]
        mod __weir_export {{
            ::weir_guest::__private::wit_bindgen::generate!({{
                inline: {wit:?},
                world: "{world_wit}",
                runtime_path: "::weir_guest::__private::wit_bindgen::rt",
                with: {{
                    "weir:connector/types@0.1.0": ::weir_guest::wit::weir::connector::types,
                    "weir:connector/log@0.1.0": ::weir_guest::wit::weir::connector::log,
                    "weir:connector/metrics@0.1.0": ::weir_guest::wit::weir::connector::metrics,
                    "weir:connector/kafka@0.1.0": ::weir_guest::wit::weir::connector::kafka,
                    "weir:connector/http@0.1.0": ::weir_guest::wit::weir::connector::http,
                    "weir:connector/sql@0.1.0": ::weir_guest::wit::weir::connector::sql,
                    "weir:connector/objects@0.1.0": ::weir_guest::wit::weir::connector::objects,
                    "weir:connector/keys@0.1.0": ::weir_guest::wit::weir::connector::keys,
                }},
            }});
            use ::weir_guest::__private as rt;
            use ::weir_guest::wit::weir::connector::types::{{Error, ConnectorSpec}};
            type C = super::__WeirConnector;
            pub struct Export;
            impl exports::weir::connector::connector::Guest for Export {{
                fn spec() -> ConnectorSpec {{ rt::spec::<C>() }}
                fn check(config: String) -> Result<(), Error> {{ rt::check::<C>(&config) }}
            }}
            {glue}
            export!(Export);
        }}
        "#,
        ty = ty,
        wit = WIT,
        world_wit = world.replace('_', "-"),
        glue = glue,
    );
    code.parse().expect("generated glue parses")
}

const BATCH_GLUE: &str = r#"
    use exports::weir::connector::batch_read as api;
    impl api::Guest for Export {
        type Reader = rt::Cell<C>;
        fn discover(config: String) -> Result<Vec<api::StreamInfo>, Error> {
            rt::discover_batch::<C>(&config)
        }
    }
    impl api::GuestReader for rt::Cell<C> {
        fn open(config: String, checkpoint: Option<String>) -> Result<api::Reader, Error> {
            rt::open_batch::<C>(&config, checkpoint.as_deref()).map(api::Reader::new)
        }
        fn next(&self, max_records: u32) -> Result<Option<api::Batch>, Error> {
            rt::next_batch(self, max_records)
        }
    }
"#;

const STREAM_GLUE: &str = r#"
    use exports::weir::connector::stream_read as api;
    impl api::Guest for Export {
        type Stream = rt::Cell<C>;
        fn discover(config: String) -> Result<Vec<api::StreamInfo>, Error> {
            rt::discover_stream::<C>(&config)
        }
    }
    impl api::GuestStream for rt::Cell<C> {
        fn open(config: String, checkpoint: Option<String>) -> Result<api::Stream, Error> {
            rt::open_stream::<C>(&config, checkpoint.as_deref()).map(api::Stream::new)
        }
        fn poll(&self, max_records: u32, max_wait_ms: u32) -> Result<api::Batch, Error> {
            rt::poll_stream(self, max_records, max_wait_ms)
        }
        fn ack(&self, checkpoint: String) -> Result<(), Error> {
            rt::ack_stream(self, &checkpoint)
        }
    }
"#;

const SINK_GLUE: &str = r#"
    use exports::weir::connector::sink_write as api;
    impl api::Guest for Export {
        type Writer = rt::Cell<C>;
    }
    impl api::GuestWriter for rt::Cell<C> {
        fn open(config: String) -> Result<api::Writer, Error> {
            rt::open_sink::<C>(&config).map(api::Writer::new)
        }
        fn write(&self, records: api::Records) -> Result<Vec<api::DeadLetter>, Error> {
            rt::write_sink(self, records)
        }
        fn flush(&self) -> Result<(), Error> {
            rt::flush_sink(self)
        }
    }
"#;

const TRANSACTIONAL_GLUE: &str = r#"
    use exports::weir::connector::sink_transactional as tx;
    impl tx::Guest for Export {
        fn stored(w: tx::WriterBorrow<'_>, pipeline: String) -> Result<Option<String>, Error> {
            rt::stored_sink(w.get::<rt::Cell<C>>(), &pipeline)
        }
        fn commit(w: tx::WriterBorrow<'_>, stamp: tx::Stamp) -> Result<Vec<tx::DeadLetter>, Error> {
            rt::commit_sink(w.get::<rt::Cell<C>>(), stamp.pipeline, stamp.epoch, stamp.checkpoint)
        }
    }
"#;

const TRANSFORM_GLUE: &str = r#"
    use exports::weir::connector::transform_records as api;
    impl api::Guest for Export {
        type Transformer = rt::Cell<C>;
    }
    impl api::GuestTransformer for rt::Cell<C> {
        fn open(config: String) -> Result<api::Transformer, Error> {
            rt::open_transform::<C>(&config).map(api::Transformer::new)
        }
        fn process(&self, records: api::Records) -> Result<api::Transformed, Error> {
            rt::process_transform(self, records).map(|t| api::Transformed {
                records: t.records,
                dead_letters: t.dead_letters,
            })
        }
    }
"#;

fn error(message: &str) -> TokenStream {
    format!("compile_error!({message:?});").parse().unwrap()
}
