//! Guests in Python and JavaScript fail like Rust ones: typed, named, with the guest's own
//! traceback or stack in the error, and without taking other pipelines down.

use crate::support::*;

fn transform_pipeline(name: &str, sink: &str) -> String {
    format!(
        r#"
[[pipeline]]
name = "{name}"
{source}[pipeline.sink]
plugin = "{sink}"
"#,
        source = file_source(),
        sink = plugin(sink).display(),
    )
}

#[test]
fn uncaught_python_and_js_errors_reach_the_host_with_their_stack() {
    let s = Scratch::new();
    // `null` is JSON, but the transforms expect an object: both guests blow up on it.
    s.write("data/a.jsonl", "{\"name\":\"a\"}\nnull\n");
    s.pipelines(&[
        transform_pipeline("py", "py_transform"),
        transform_pipeline("js", "js_transform"),
        transform_pipeline("rust", "transform"),
    ]);
    let run = s.run_once();
    assert!(!run.ok);
    let error = |p: &str| {
        run.summary(p)["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };

    assert_contains_all(
        &error("py"),
        &[
            "plugin `py_transform` failed in sink-write.writer.write",
            "AttributeError: 'NoneType' object has no attribute 'get'",
            "Traceback (most recent call last)",
            "app.py\", line",
        ],
    );
    assert_contains_all(
        &error("js"),
        &[
            "plugin `js_transform` failed in sink-write.writer.write",
            "TypeError",
            "obj is null",
            // A stack frame of the connector's own `write`.
            "write@",
        ],
    );
    // Neither took the other pipelines down: serde_json takes `null` as an empty object.
    assert_eq!(run.summary("rust")["status"], "ok", "{}", run.stderr);
    assert_eq!(run.summary("rust")["records_written"], 2);
}

/// The Python and JavaScript SDKs' wrappers of the host's SQL, object, Kafka and Kinesis
/// interfaces, against real servers. Each io-sink writes every batch to PostgreSQL (a
/// transaction), to an object, to a Kafka topic and to a Kinesis stream through its SDK,
/// and reads each back through the same SDK (a streamed query, a paged listing and a read
/// in pieces, a consumer that commits, shard readers) before it returns from flush; a
/// read-back that differs fails the run.
#[test]
fn python_and_javascript_sdks_write_and_read_sql_objects_kafka_and_kinesis() {
    use crate::fixtures::broker::Broker;
    use crate::fixtures::kinesis::Kinesis;
    use crate::fixtures::postgres::{PASSWORD, Postgres};
    let pg = Postgres::start();
    let broker = Broker::start();
    let kinesis = Kinesis::start();
    for lang in ["py", "js"] {
        let s = Scratch::new();
        s.write("pg-password", &format!("{PASSWORD}\n"));
        s.write("aws-key", crate::fixtures::kinesis::KEY_ID);
        s.write("aws-secret", "weir-test-secret");
        let stream = format!("{lang}-io");
        kinesis.create_stream(&stream, 2);
        s.write("data/in.jsonl", &numbered(0..250));
        std::fs::create_dir_all(s.path("objects")).unwrap();
        let topic = format!("{lang}-io");
        broker.create_topic(&topic, 2);
        s.pipelines(&[format!(
            r#"
[[pipeline]]
name = "io"
batch_size = 100
{source}[pipeline.sink]
plugin = "{sink}"
config = {{ table = "{lang}_io", prefix = "batches", topic = "{topic}", stream = "{stream}" }}
{sql}
{kinesis}
grants.objects = {{ dir = "objects" }}
grants.kafka = {{ brokers = "{brokers}", topics = ["{topic}"], properties = {{ "auto.offset.reset" = "earliest" }} }}
"#,
            source = file_source(),
            sink = plugin(&format!("{lang}_io_sink")).display(),
            sql = pg.grant("pg-password"),
            brokers = broker.brokers(),
            kinesis = Kinesis::grant_at(&kinesis.endpoint, &[&stream]),
        )]);
        let run = s.run_once();
        assert!(run.ok, "{lang}: {}", run.stderr);
        assert_eq!(run.summary("io")["records_written"], 250, "{lang}");

        // Seen from outside, by other clients: every row, object and message.
        let rows: Vec<i64> = pg
            .client()
            .query(&format!("SELECT n FROM {lang}_io ORDER BY n"), &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(rows, (0..250).collect::<Vec<i64>>(), "{lang}");
        let mut objects: Vec<String> = std::fs::read_dir(s.path("objects/batches"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        objects.sort();
        assert_eq!(
            objects,
            [
                "batch-00000000.jsonl",
                "batch-00000100.jsonl",
                "batch-00000200.jsonl"
            ],
            "{lang}"
        );
        assert_eq!(
            numbers_in(&s.read("objects/batches/batch-00000200.jsonl")),
            (200..250).collect::<Vec<u64>>()
        );
        let mut consumed: Vec<u64> = broker
            .consume(&topic, 2, 250)
            .iter()
            .map(|c| {
                let v: serde_json::Value =
                    serde_json::from_slice(c.value.as_deref().unwrap()).unwrap();
                v["n"].as_u64().unwrap()
            })
            .collect();
        consumed.sort();
        assert_eq!(consumed, (0..250).collect::<Vec<u64>>(), "{lang}");
        let mut streamed: Vec<u64> = kinesis
            .read_all(&stream)
            .iter()
            .map(|(_, data)| numbers_in(std::str::from_utf8(data).unwrap())[0])
            .collect();
        streamed.sort();
        assert_eq!(streamed, (0..250).collect::<Vec<u64>>(), "{lang}");
    }
}
