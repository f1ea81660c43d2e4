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
