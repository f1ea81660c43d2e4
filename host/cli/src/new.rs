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
    "rust/cargo-config.toml",
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

/// The SDKs, the contract and the guide, as this binary was built with them (build.rs),
/// by their paths in weir's repository.
const SDK_FILES: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/sdk_files.rs"));

/// Where `weir new` vendors the SDK inside a project: the repository's layout below it, so
/// the SDKs' relative paths to the contract hold.
const VENDORED: &str = "weir-sdk";

fn sdk_file(path: &str) -> &'static [u8] {
    SDK_FILES
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, bytes)| *bytes)
        .unwrap_or_else(|| panic!("no embedded SDK file {path}"))
}

/// Writes the language's embedded SDK, the contract and the guide into `dir/weir-sdk/`,
/// each crate's manifest made standalone (the workspace's inherited fields and dependencies
/// written out).
fn vendor_sdk(dir: &Path, lang: Lang) -> Result<()> {
    let workspace: toml::Table = toml::from_str(std::str::from_utf8(sdk_file("Cargo.toml"))?)?;
    let needed = |rel: &str| match lang {
        Lang::Rust => !rel.starts_with("guest-sdk/python/") && !rel.starts_with("guest-sdk/js/"),
        Lang::Python => !rel.starts_with("guest-sdk/") || rel.starts_with("guest-sdk/python/"),
        Lang::Js => !rel.starts_with("guest-sdk/") || rel.starts_with("guest-sdk/js/"),
    };
    for (rel, bytes) in SDK_FILES {
        let crate_part = rel.ends_with("Cargo.toml") || rel.starts_with("wit/wire/");
        if *rel == "Cargo.toml" || !needed(rel) || (lang != Lang::Rust && crate_part) {
            continue;
        }
        let path = dir.join(VENDORED).join(rel);
        let bytes = match rel.strip_suffix("/Cargo.toml") {
            Some(crate_dir) => {
                standalone_manifest(std::str::from_utf8(bytes)?, &workspace, crate_dir)?
                    .into_bytes()
            }
            None => bytes.to_vec(),
        };
        write_file(&path, &bytes)?;
    }
    Ok(())
}

/// A workspace member's manifest with every `x.workspace = true` replaced by what the
/// workspace says, paths made relative to `crate_dir` (the member's folder from the root).
fn standalone_manifest(text: &str, workspace: &toml::Table, crate_dir: &str) -> Result<String> {
    let ws = workspace["workspace"]
        .as_table()
        .context("root manifest has no [workspace]")?;
    let up = "../".repeat(crate_dir.split('/').count());
    let mut section = String::new();
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            section = trimmed.trim_matches(['[', ']']).to_string();
        }
        let Some(key) = trimmed
            .strip_suffix(".workspace = true")
            .filter(|k| !k.contains([' ', '=']))
        else {
            ensure!(
                !trimmed.contains("workspace = true"),
                "{crate_dir}/Cargo.toml: `{trimmed}` is a form weir new cannot vendor"
            );
            out += line;
            out.push('\n');
            continue;
        };
        let from = if section == "package" {
            "package"
        } else {
            "dependencies"
        };
        let mut value = ws
            .get(from)
            .and_then(|t| t.get(key))
            .with_context(|| format!("workspace.{from} has no `{key}`"))?
            .clone();
        if let Some(path) = value.get_mut("path") {
            *path = toml::Value::String(format!("{up}{}", path.as_str().unwrap_or_default()));
        }
        out += &format!("{key} = {}\n", inline(&value));
    }
    Ok(out)
}

/// A TOML value on one line (tables inline).
fn inline(value: &toml::Value) -> String {
    match value {
        toml::Value::Table(t) => {
            let fields: Vec<String> = t
                .iter()
                .map(|(k, v)| format!("{k} = {}", inline(v)))
                .collect();
            format!("{{ {} }}", fields.join(", "))
        }
        toml::Value::Array(a) => {
            let items: Vec<String> = a.iter().map(inline).collect();
            format!("[{}]", items.join(", "))
        }
        other => other.to_string(),
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::create_dir_all(path.parent().unwrap())
        .with_context(|| format!("cannot create {}", path.parent().unwrap().display()))?;
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "sh") {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

/// Where weir's own plugins are (the pipeline file runs the connector between them):
/// `$WEIR_PLUGINS`, else `plugins/` beside the folder of this binary (`dist/bin/weir` and
/// `dist/plugins/`, as the build lays them out).
pub fn plugins_dir() -> Result<PathBuf> {
    let dir = match std::env::var_os("WEIR_PLUGINS") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::current_exe()?
            .parent()
            .and_then(Path::parent)
            .context("this binary has no parent folder")?
            .join("plugins"),
    };
    dir.canonicalize().with_context(|| {
        format!(
            "weir's plugins are not at {} (set WEIR_PLUGINS to the folder with file_source.wasm)",
            dir.display()
        )
    })
}

pub struct New {
    pub lang: Lang,
    pub kind: Kind,
    pub name: String,
    pub dir: PathBuf,
    /// An SDK folder to link to instead of vendoring the embedded one.
    pub sdk: Option<PathBuf>,
    /// weir's plugins, which the project's pipeline file runs the connector between.
    pub plugins: PathBuf,
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
    let plugins = &new.plugins;
    // An SDK folder given links the project to it (weir's own development); otherwise the
    // project gets its own copy of the SDK this binary carries, and names it by relative
    // paths, so the project can move.
    let (sdk_root, guide) = match &new.sdk {
        Some(dir) => {
            let dir = dir
                .canonicalize()
                .with_context(|| format!("SDK folder {} not found", dir.display()))?;
            let guide = dir.join("../docs/writing-connectors.md");
            (dir, guide)
        }
        None => {
            vendor_sdk(&new.dir, new.lang)?;
            let vendored = PathBuf::from(VENDORED);
            (
                vendored.join("guest-sdk"),
                vendored.join("docs/writing-connectors.md"),
            )
        }
    };
    let world = new.kind.world();
    let (language, sdk, files): (&str, PathBuf, Vec<(String, &str)>) = match new.lang {
        Lang::Rust => (
            "Rust",
            sdk_root.clone(),
            vec![
                ("Cargo.toml".into(), template("rust/Cargo.toml")),
                (
                    ".cargo/config.toml".into(),
                    template("rust/cargo-config.toml"),
                ),
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
            "it writes 1000 records to `out/`, and a second run writes none: the checkpoint held.",
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
    // `weir test` on the built component, with the config (as JSON) and grants the
    // pipeline file gives it.
    let writes = grants.contains("write = true");
    let test_config: serde_json::Value = toml::from_str::<toml::Table>(&format!("c = {config}"))
        .map(|t| serde_json::to_value(&t["c"]))
        .context("a template's config is not TOML")??;
    let grants_arg = if writes {
        " --grants test-grants.toml"
    } else {
        ""
    };
    let conformance = match (new.kind, new.lang) {
        (Kind::Sink, Lang::Js) => format!(
            "# The conformance suite (weir test) posts to the URL in test-config.json: start a\n\
             # server there, then: ./build.sh && weir test {name}.wasm --config test-config.json"
        ),
        _ => format!(
            "# The conformance suite on the built component: resume from every checkpoint,\n\
             # redelivery, dead letters, limits (weir must be on PATH, or named by $WEIR).\n\
             ./build.sh\n\
             \"${{WEIR:-weir}}\" test {name}.wasm --config test-config.json{grants_arg}"
        ),
    };
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
        ("{{conformance}}", &conformance),
    ];
    let mut all: Vec<(String, String)> = files
        .into_iter()
        .map(|(rel, text)| (rel, text.to_string()))
        .collect();
    all.push((
        "test-config.json".into(),
        serde_json::to_string_pretty(&test_config)? + "\n",
    ));
    if writes {
        // The suite writes test records: into test-out/, not where the pipeline writes.
        let dirs = grants
            .trim_start_matches("grants.")
            .replace("host = \"out\"", "host = \"test-out\"");
        all.push(("test-grants.toml".into(), dirs + "\n"));
    }
    for (rel, name) in [
        ("README.md", "README.md"),
        (".gitignore", "gitignore"),
        ("pipeline.toml", pipeline),
    ] {
        all.push((rel.into(), template(name).to_string()));
    }
    if matches!(new.kind, Kind::Sink | Kind::Transform) {
        all.push((
            "data/sample.jsonl".into(),
            template("data/sample.jsonl").to_string(),
        ));
    }
    let mut written = Vec::new();
    for (rel, text) in all {
        let text = vars.iter().fold(text, |t, (k, v)| t.replace(k, v));
        write_file(&new.dir.join(&rel), text.as_bytes())?;
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
                    plugins: dir.path().to_path_buf(),
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
            plugins: dir.path().to_path_buf(),
        };
        assert!(format!("{:#}", scaffold(&new).unwrap_err()).contains("lower-case"));
        std::fs::write(dir.path().join("x"), "").unwrap();
        new.name = "ok".into();
        assert!(format!("{:#}", scaffold(&new).unwrap_err()).contains("not empty"));
    }
}
