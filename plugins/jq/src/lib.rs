//! `jq`: runs a jq program on each record's JSON value, with jaq (a jq implementation in
//! Rust) compiled into the component. One output maps the record, none drops it, several
//! expand it; keys, headers, timestamps and change ops are kept. The program is compiled
//! once, at open.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data, unwrap_valr};
use jaq_json::Val;
use schemars::JsonSchema;
use serde::Deserialize;
use weir_guest::{
    Connector, DeadLetter, Error, RecordView, Records, Result, Transform, Transformed,
};

type Data = data::JustLut<Val>;
type Filter = jaq_core::Filter<Data>;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The jq program run on each record's value, e.g. `select(.n % 2 == 0) | .name |=
    /// ascii_upcase`. Each output becomes a record.
    program: String,
    /// A jq program run on each output; its first result becomes that record's key (a
    /// string as it is, anything else as JSON). Without one, the input's key is kept.
    #[serde(default)]
    key: Option<String>,
    /// What a record the program fails on (or whose value is not JSON) does: become a
    /// dead letter with the error (the default), or fail the pipeline.
    #[serde(default)]
    on_error: OnError,
}

#[derive(Deserialize, JsonSchema, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum OnError {
    #[default]
    DeadLetter,
    Fail,
}

pub struct Jq {
    program: Filter,
    key: Option<Filter>,
    on_error: OnError,
    out: Vec<u8>,
}

impl Connector for Jq {
    const NAME: &'static str = "jq";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Runs a jq program on each record's JSON value: map, filter (no output) or expand (several).";
    type Config = Config;

    fn check(config: &Config) -> Result<()> {
        compile(&config.program, "program")?;
        if let Some(key) = &config.key {
            compile(key, "key")?;
        }
        Ok(())
    }
}

impl Transform for Jq {
    fn open(config: Config) -> Result<Self> {
        Ok(Jq {
            program: compile(&config.program, "program")?,
            key: config
                .key
                .as_deref()
                .map(|k| compile(k, "key"))
                .transpose()?,
            on_error: config.on_error,
            out: Vec::new(),
        })
    }

    fn process(&mut self, records: Records) -> Result<Transformed> {
        let mut t = Transformed {
            records: Records::with_capacity(records.len(), records.data.len()),
            dead_letters: Vec::new(),
        };
        for r in records.iter() {
            // A tombstone has no value to run on: it passes as it is.
            let Some(value) = r.value() else {
                t.records.push_like(&r, None);
                continue;
            };
            if let Err(reason) = self.one(&r, value, &mut t.records) {
                if self.on_error == OnError::Fail {
                    return Err(Error::Fatal(reason));
                }
                t.dead_letters.push(DeadLetter {
                    key: r.key().map(<[u8]>::to_vec),
                    value: Some(value.to_vec()),
                    reason,
                });
            }
        }
        Ok(t)
    }
}

impl Jq {
    /// Runs the program on one value, appending its outputs; on an error nothing of this
    /// record is appended.
    fn one(
        &mut self,
        r: &RecordView<'_>,
        value: &[u8],
        out: &mut Records,
    ) -> std::result::Result<(), String> {
        let input =
            jaq_json::read::parse_single(value).map_err(|e| format!("value is not JSON: {e}"))?;
        let results: Vec<Val> = run(&self.program, input)?;
        for v in results {
            self.out.clear();
            write(&mut self.out, &v);
            match &self.key {
                None => out.push_like(r, Some(&self.out)),
                Some(key) => {
                    let key = match run(key, v)?.into_iter().next() {
                        Some(Val::TStr(s)) | Some(Val::BStr(s)) => s.to_vec(),
                        Some(other) => {
                            let mut k = Vec::new();
                            write(&mut k, &other);
                            k
                        }
                        None => r.key().unwrap_or_default().to_vec(),
                    };
                    out.push_keyed_like(r, &key, &self.out);
                }
            }
        }
        Ok(())
    }
}

fn run(filter: &Filter, input: Val) -> std::result::Result<Vec<Val>, String> {
    let ctx = Ctx::<Data>::new(&filter.lut, Vars::new([]));
    filter
        .id
        .run((ctx, input))
        .map(unwrap_valr)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| format!("jq: {e}"))
}

/// Writes `v` as compact JSON, byte for byte as jaq's own writer does (the tests compare
/// the two), without going through `fmt`: on a simple program, half the cost of writing.
fn write(out: &mut Vec<u8>, v: &Val) {
    use jaq_json::Num;
    match v {
        Val::Null => out.extend_from_slice(b"null"),
        Val::Bool(true) => out.extend_from_slice(b"true"),
        Val::Bool(false) => out.extend_from_slice(b"false"),
        Val::Num(Num::Int(i)) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
        Val::Num(Num::Float(x)) if x.is_finite() => {
            out.extend_from_slice(ryu::Buffer::new().format_finite(*x).as_bytes())
        }
        Val::Num(Num::Dec(d)) => out.extend_from_slice(d.as_bytes()),
        Val::TStr(s) => write_str(out, s),
        Val::Arr(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(out, item);
            }
            out.push(b']');
        }
        Val::Obj(fields) => {
            out.push(b'{');
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(out, k);
                out.push(b':');
                write(out, v);
            }
            out.push(b'}');
        }
        // Byte strings, big integers, NaN and the infinities: rare, and jaq's way.
        other => jaq_json::write::write(out, &jaq_json::write::Pp::default(), 0, other)
            .expect("writing to a Vec cannot fail"),
    }
}

/// A string as jaq writes one: its bytes as they are, but for `"`, `\` and control
/// characters, escaped.
fn write_str(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    let mut start = 0;
    for (i, &c) in s.iter().enumerate() {
        let escape: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\t' => b"\\t",
            b'\r' => b"\\r",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f | 0x7f => b"",
            _ => continue,
        };
        out.extend_from_slice(&s[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(c >> 4)]);
            out.push(HEX[usize::from(c & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&s[start..]);
    out.push(b'"');
}

/// Compiles a program, or says where it is wrong: `config` errors name the field, the
/// position (line:column) and what was expected there.
fn compile(code: &str, field: &str) -> Result<Filter> {
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs());
    let loader = Loader::new(defs);
    let arena = Arena::default();
    let at = |s: &str| position(code, s);
    let modules = loader
        .load(&arena, File { code, path: () })
        .map_err(|errors| {
            let mut found = Vec::new();
            for (_, e) in errors {
                match e {
                    jaq_core::load::Error::Io(io) => {
                        found.extend(io.into_iter().map(|(path, e)| format!("{path}: {e}")))
                    }
                    jaq_core::load::Error::Lex(lex) => found.extend(
                        lex.into_iter()
                            .map(|(expect, s)| format!("{}: expected {}", at(s), expect.as_str())),
                    ),
                    jaq_core::load::Error::Parse(parse) => found.extend(
                        parse
                            .into_iter()
                            .map(|(expect, s)| format!("{}: expected {}", at(s), expect.as_str())),
                    ),
                }
            }
            Error::Config(format!("{field}: {}", found.join("; ")))
        })?;
    Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errors| {
            let found: Vec<String> = errors
                .into_iter()
                .flat_map(|(_, es)| es)
                .map(|(name, undefined)| {
                    format!("{}: undefined {} `{name}`", at(name), undefined.as_str())
                })
                .collect();
            Error::Config(format!("{field}: {}", found.join("; ")))
        })
}

/// Where `part` (a slice of `code`, as jaq's errors hold) starts: `line L, column C`.
fn position(code: &str, part: &str) -> String {
    let offset = (part.as_ptr() as usize)
        .checked_sub(code.as_ptr() as usize)
        .filter(|o| *o <= code.len())
        .unwrap_or(code.len());
    let before = &code[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}")
}

weir_guest::export_transform!(Jq);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_guest::RecordRef;

    fn jq(program: &str) -> Jq {
        Jq::open(Config {
            program: program.into(),
            key: None,
            on_error: OnError::DeadLetter,
        })
        .unwrap()
    }

    fn values(records: &Records) -> Vec<String> {
        records
            .iter()
            .map(|r| String::from_utf8(r.value().unwrap().to_vec()).unwrap())
            .collect()
    }

    fn batch(values: &[&str]) -> Records {
        let mut records = Records::new();
        for v in values {
            records.push(RecordRef {
                key: Some(b"k"),
                value: Some(v.as_bytes()),
                headers: &[("h", b"1")],
                timestamp_ms: Some(7),
                op: None,
            });
        }
        records
    }

    #[test]
    fn maps_filters_and_expands_keeping_keys_headers_and_timestamps() {
        let mut t = jq(r#"select(.n % 2 == 0) | .name |= ascii_upcase"#);
        let out = t
            .process(batch(&[r#"{"n":1,"name":"a"}"#, r#"{"n":2,"name":"b"}"#]))
            .unwrap();
        assert_eq!(values(&out.records), [r#"{"n":2,"name":"B"}"#]);
        let r = out.records.iter().next().unwrap();
        assert_eq!(r.key(), Some(&b"k"[..]));
        assert_eq!(r.timestamp_ms(), Some(7));
        assert_eq!(r.headers().count(), 1);

        let out = jq(".items[]")
            .process(batch(&[r#"{"items":[1,2,3]}"#]))
            .unwrap();
        assert_eq!(values(&out.records), ["1", "2", "3"]);
    }

    #[test]
    fn a_runtime_error_makes_that_record_a_dead_letter_with_jaqs_message() {
        let out = jq(".n + 1")
            .process(batch(&[r#"{"n":"x"}"#, r#"{"n":1}"#, "not json"]))
            .unwrap();
        assert_eq!(values(&out.records), ["2"]);
        assert_eq!(out.dead_letters.len(), 2);
        assert!(
            out.dead_letters[0].reason.starts_with("jq: "),
            "{}",
            out.dead_letters[0].reason
        );
        assert!(out.dead_letters[1].reason.contains("not JSON"));

        let mut failing = jq(".n + 1");
        failing.on_error = OnError::Fail;
        assert!(matches!(
            failing.process(batch(&[r#"{"n":"x"}"#])),
            Err(Error::Fatal(_))
        ));
    }

    #[test]
    fn a_key_program_sets_the_key() {
        let mut t = Jq::open(Config {
            program: ".".into(),
            key: Some(".id".into()),
            on_error: OnError::DeadLetter,
        })
        .unwrap();
        let out = t
            .process(batch(&[r#"{"id":"a1"}"#, r#"{"id":7}"#]))
            .unwrap();
        let keys: Vec<&[u8]> = out.records.iter().map(|r| r.key().unwrap()).collect();
        assert_eq!(keys, [&b"a1"[..], &b"7"[..]]);
    }

    /// The fast writer and jaq's agree byte for byte, escapes and numbers included.
    #[test]
    fn values_are_written_as_jaq_writes_them() {
        let inputs = [
            r#"{"n":1,"f":12.5,"e":1e300,"neg":-0.0,"big":123456789012345678901234567890}"#,
            r#"{"s":"quote \" backslash \\ nl \n tab \t cr \r bs \b ff \f nul \u0000 del \u007f é ☃ 😀"}"#,
            r#"[null,true,false,[],{},[1,[2,{"a":[3]}]],"",0,-7,3.0,1.5e-7]"#,
        ];
        for input in inputs {
            let v = jaq_json::read::parse_single(input.as_bytes()).unwrap();
            // Also values jaq computes rather than parses: floats and ints from arithmetic.
            for v in [v.clone()]
                .into_iter()
                .chain(run(&compile("[.. | numbers | . * 3, . / 7]", "p").unwrap(), v).unwrap())
            {
                let mut fast = Vec::new();
                write(&mut fast, &v);
                let mut theirs = Vec::new();
                jaq_json::write::write(&mut theirs, &jaq_json::write::Pp::default(), 0, &v)
                    .unwrap();
                assert_eq!(
                    String::from_utf8_lossy(&fast),
                    String::from_utf8_lossy(&theirs)
                );
            }
        }
    }

    #[test]
    fn a_program_that_does_not_compile_is_a_config_error_naming_the_position() {
        for (program, expected) in [
            (".a |\n  (", "line 2, column"),
            (".a | nosuchfilter", "undefined filter `nosuchfilter`"),
        ] {
            let Err(Error::Config(e)) = compile(program, "program") else {
                panic!("{program} compiled");
            };
            assert!(e.starts_with("program: "), "{e}");
            assert!(e.contains(expected), "{expected} not in {e}");
        }
    }
}
