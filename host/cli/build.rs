//! Embeds the guest SDKs, the contract and the author's guide, so that `weir new` can vendor
//! them into a project from the binary alone (no source tree, no `WEIR_SDK`).

use std::path::{Path, PathBuf};

/// What a connector project needs, relative to the repository root: the Rust SDK and its
/// macro, the packed-entry layout they share with the host, the Python and JavaScript SDKs
/// (not their tests or installed packages), the WIT contract, and the guide.
const ROOTS: &[&str] = &[
    "Cargo.toml",
    "guest-sdk/Cargo.toml",
    "guest-sdk/src",
    "guest-sdk/macro/Cargo.toml",
    "guest-sdk/macro/src",
    "guest-sdk/python",
    "guest-sdk/js/package.json",
    "guest-sdk/js/package-lock.json",
    "guest-sdk/js/index.js",
    "guest-sdk/js/component.js",
    "guest-sdk/js/glue.js",
    "guest-sdk/js/componentize.mjs",
    "wit/connector.wit",
    "wit/wire/Cargo.toml",
    "wit/wire/src",
    "docs/writing-connectors.md",
];

fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
    let path = root.join(rel);
    if path.is_dir() {
        println!("cargo:rerun-if-changed={}", path.display());
        let mut entries: Vec<_> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        entries.sort();
        for name in entries {
            let name = name.to_str().unwrap();
            if name == "tests" || name == "__pycache__" || name.starts_with('.') {
                continue;
            }
            walk(root, &rel.join(name), out);
        }
    } else {
        println!("cargo:rerun-if-changed={}", path.display());
        out.push(rel.to_path_buf());
    }
}

fn main() {
    // At run time, not `env!`: a build script compiled in one checkout is reused by another
    // sharing the target dir (CI's clone and the working tree).
    let root =
        Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
            .join("../..");
    let mut files = Vec::new();
    for rel in ROOTS {
        walk(&root, Path::new(rel), &mut files);
    }
    let mut code = String::from("&[\n");
    for rel in files {
        let abs = root.join(&rel).canonicalize().unwrap();
        code += &format!(
            "    ({:?}, include_bytes!({:?})),\n",
            rel.to_str().unwrap(),
            abs.to_str().unwrap()
        );
    }
    code += "]\n";
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("sdk_files.rs");
    std::fs::write(out, code).unwrap();
}
