//! Guests in Python and JavaScript fail like Rust ones: typed, named, with the guest's own
//! traceback or stack in the error, and without taking other pipelines down.

use crate::support::*;

fn transform_pipeline(name: &str, sink: &str) -> String {
    format!(
        r#"
[[pipeline]]
name = "{name}"
[pipeline.source]
plugin = "{source}"
config = {{ dir = "/data" }}
grants.dirs = [{{ host = "data", guest = "/data" }}]
[pipeline.sink]
plugin = "{sink}"
"#,
        source = plugin("file_source").display(),
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

    let py = error("py");
    for expected in [
        "plugin `py_transform` failed in sink-write.writer.write",
        "AttributeError: 'NoneType' object has no attribute 'get'",
        "Traceback (most recent call last)",
        "app.py\", line",
    ] {
        assert!(py.contains(expected), "{expected:?} not in {py}");
    }
    let js = error("js");
    for expected in [
        "plugin `js_transform` failed in sink-write.writer.write",
        "TypeError",
        "obj is null",
        // A stack frame of the connector's own `write`.
        "write@",
    ] {
        assert!(js.contains(expected), "{expected:?} not in {js}");
    }
    // Neither took the other pipelines down: serde_json takes `null` as an empty object.
    assert_eq!(run.summary("rust")["status"], "ok", "{}", run.stderr);
    assert_eq!(run.summary("rust")["records_written"], 2);
}
