//! `weir new`: a connector project that builds to a `.wasm` with one command and passes
//! its own test, in Rust, Python or JavaScript.

use anyhow::{Context, Result, bail, ensure};
use clap::ValueEnum;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum Kind {
    BatchSource,
    StreamSource,
    Sink,
    Transform,
}

impl Kind {
    /// The WIT world, which is also how the SDKs' build tools name it.
    fn world(self) -> &'static str {
        match self {
            Kind::BatchSource => "batch-source",
            Kind::StreamSource => "stream-source",
            Kind::Sink => "sink",
            Kind::Transform => "transform",
        }
    }
}

macro_rules! templates {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../templates/", $path)))),*]
    };
}

const TEMPLATES: &[(&str, &str)] = templates!(
    "README.md",
    "gitignore",
    "source.pipeline.toml",
    "sink.pipeline.toml",
    "transform.pipeline.toml",
    "data/sample.jsonl",
    "rust/Cargo.toml",
    "rust/build.sh",
    "rust/test.sh",
    "rust/batch-source.rs",
    "rust/stream-source.rs",
    "rust/sink.rs",
    "rust/transform.rs",
    "python/build.sh",
    "python/test.sh",
    "python/batch-source.py",
    "python/batch-source.test.py",
    "python/stream-source.py",
    "python/stream-source.test.py",
    "python/sink.py",
    "python/sink.test.py",
    "python/transform.py",
    "python/transform.test.py",
    "js/package.json",
    "js/build.sh",
    "js/test.sh",
    "js/batch-source.js",
    "js/batch-source.test.js",
    "js/stream-source.js",
    "js/stream-source.test.js",
    "js/sink.js",
    "js/sink.test.js",
    "js/transform.js",
    "js/transform.test.js",
);

fn template(path: &str) -> &'static str {
    TEMPLATES
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, text)| *text)
        .unwrap_or_else(|| panic!("no template {path}"))
}

/// Where this weir's SDKs and plugins live: given, from the environment, or the source
/// tree this binary was built from.
fn repo_dir(given: Option<PathBuf>, var: &str, rel: &str) -> Result<PathBuf> {
    let dir = given
        .or_else(|| std::env::var_os(var).map(PathBuf::from))
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join(rel)
        });
    dir.canonicalize()
        .with_context(|| format!("{} not found (set {var} or pass it)", dir.display()))
}

pub struct New {
    pub lang: Lang,
    pub kind: Kind,
    pub name: String,
    pub dir: PathBuf,
    pub sdk: Option<PathBuf>,
}

/// Writes the project and returns the files written, relative to its directory.
pub fn scaffold(new: &New) -> Result<Vec<String>> {
    let name = &new.name;
    ensure!(
        name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "connector name `{name}`: use lower-case letters, digits and `-`, starting with a letter"
    );
    if new.dir.exists() && new.dir.read_dir()?.next().is_some() {
        bail!("{} exists and is not empty", new.dir.display());
    }
    let sdk_root = repo_dir(new.sdk.clone(), "WEIR_SDK", "guest-sdk")?;
    let plugins = repo_dir(None, "WEIR_PLUGINS", "dist/plugins")
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/plugins"));
    let world = new.kind.world();
    let (language, sdk, files): (&str, PathBuf, Vec<(String, &str)>) = match new.lang {
        Lang::Rust => (
            "Rust",
            sdk_root.clone(),
            vec![
                ("Cargo.toml".into(), template("rust/Cargo.toml")),
                ("build.sh".into(), template("rust/build.sh")),
                ("test.sh".into(), template("rust/test.sh")),
                ("src/lib.rs".into(), template(&format!("rust/{world}.rs"))),
            ],
        ),
        Lang::Python => (
            "Python",
            sdk_root.join("python"),
            vec![
                ("build.sh".into(), template("python/build.sh")),
                ("test.sh".into(), template("python/test.sh")),
                ("app.py".into(), template(&format!("python/{world}.py"))),
                (
                    "test_app.py".into(),
                    template(&format!("python/{world}.test.py")),
                ),
            ],
        ),
        Lang::Js => (
            "JavaScript",
            sdk_root.join("js"),
            vec![
                ("package.json".into(), template("js/package.json")),
                ("build.sh".into(), template("js/build.sh")),
                ("test.sh".into(), template("js/test.sh")),
                ("connector.js".into(), template(&format!("js/{world}.js"))),
                (
                    "connector.test.js".into(),
                    template(&format!("js/{world}.test.js")),
                ),
            ],
        ),
    };
    let (pipeline, config, grants, try_it) = match (new.kind, new.lang) {
        (Kind::BatchSource, _) => (
            "source.pipeline.toml",
            "{ count = 1000 }",
            "",
            "it writes 1000 records to `out/`, and a second run writes none: the cursor held.",
        ),
        (Kind::StreamSource, _) => (
            "source.pipeline.toml",
            "{ per_poll = 10, limit = 100 }",
            "",
            "`--once` reads until the stream is idle (100 records) into `out/`.",
        ),
        (Kind::Sink, Lang::Js) => (
            "sink.pipeline.toml",
            "{ url = \"http://127.0.0.1:8080/ingest\" }",
            "grants.http = { hosts = [\"127.0.0.1:8080\"] }",
            "it posts `data/sample.jsonl` to the URL in its config (start a server there first); the value that is not a JSON object goes to `dead-letters/`.",
        ),
        (Kind::Transform, _) => (
            "transform.pipeline.toml",
            "{ field = \"name\" }",
            "",
            "it upper-cases `name` in `data/sample.jsonl` into `out/out.jsonl`; the value that is not a JSON object goes to `dead-letters/`.",
        ),
        (Kind::Sink, _) => (
            "sink.pipeline.toml",
            "{ dir = \"/out\" }",
            "grants.dirs = [{ host = \"out\", guest = \"/out\", write = true }]",
            "it writes `data/sample.jsonl` to `out/out.jsonl`; the value that is not a JSON object goes to `dead-letters/`.",
        ),
    };
    let guide = sdk_root.join("../docs/writing-connectors.md");
    let vars = [
        ("{{name}}", name.as_str()),
        ("{{crate}}", &name.replace('-', "_")),
        ("{{kind}}", world),
        ("{{language}}", language),
        ("{{sdk}}", &sdk.display().to_string()),
        ("{{plugins}}", &plugins.display().to_string()),
        ("{{config}}", config),
        ("{{grants}}", grants),
        ("{{try}}", try_it),
        ("{{guide}}", &guide.display().to_string()),
    ];
    let mut all = files;
    all.push(("README.md".into(), template("README.md")));
    all.push((".gitignore".into(), template("gitignore")));
    all.push(("pipeline.toml".into(), template(pipeline)));
    if matches!(new.kind, Kind::Sink | Kind::Transform) {
        all.push(("data/sample.jsonl".into(), template("data/sample.jsonl")));
    }
    let mut written = Vec::new();
    for (rel, text) in all {
        let text = vars
            .iter()
            .fold(text.to_string(), |t, (k, v)| t.replace(k, v));
        let path = new.dir.join(&rel);
        std::fs::create_dir_all(path.parent().unwrap())
            .with_context(|| format!("cannot create {}", path.parent().unwrap().display()))?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        if rel.ends_with(".sh") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
        written.push(rel);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every language and kind renders, with no placeholder left behind.
    #[test]
    fn every_template_renders_completely() {
        for lang in [Lang::Rust, Lang::Python, Lang::Js] {
            for kind in [
                Kind::BatchSource,
                Kind::StreamSource,
                Kind::Sink,
                Kind::Transform,
            ] {
                let dir = tempfile::tempdir().unwrap();
                let new = New {
                    lang,
                    kind,
                    name: "my-conn".into(),
                    dir: dir.path().join("p"),
                    sdk: None,
                };
                let files = scaffold(&new).unwrap();
                assert!(files.iter().any(|f| f == "build.sh"), "{lang:?} {kind:?}");
                for f in files {
                    let text = std::fs::read_to_string(new.dir.join(&f)).unwrap();
                    assert_eq!(placeholder(&text), None, "{lang:?} {kind:?} {f}");
                }
            }
        }
    }

    /// A `{{word}}` left in the text (Rust's `{{` escapes in format strings are not words).
    fn placeholder(text: &str) -> Option<&str> {
        text.match_indices("{{").find_map(|(i, _)| {
            let rest = &text[i + 2..];
            let end = rest.find("}}")?;
            let word = &rest[..end];
            (!word.is_empty() && word.chars().all(|c| c.is_ascii_lowercase())).then_some(word)
        })
    }

    #[test]
    fn bad_names_and_non_empty_dirs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut new = New {
            lang: Lang::Rust,
            kind: Kind::Sink,
            name: "My_Conn".into(),
            dir: dir.path().to_path_buf(),
            sdk: None,
        };
        assert!(format!("{:#}", scaffold(&new).unwrap_err()).contains("lower-case"));
        std::fs::write(dir.path().join("x"), "").unwrap();
        new.name = "ok".into();
        assert!(format!("{:#}", scaffold(&new).unwrap_err()).contains("not empty"));
    }
}
