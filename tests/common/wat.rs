//! Hand-written hostile plugins: a core module in WAT, turned into a resolver component of
//! `wit/` with wit-component. What a Rust guest cannot express (many memories, huge tables,
//! pathological functions, other interface versions) is written here.

/// Pieces spliced into a minimal, valid resolver (`hostile`, profiles `[guest]`, answers
/// `guest`): extra module fields, and code run at the start of `info` and `resolve`.
#[derive(Default)]
pub struct Hostile<'a> {
    pub name: &'a str,
    pub fields: &'a str,
    pub info: &'a str,
    pub resolve: &'a str,
}

/// The core module: a bump allocator for the host's strings, the info record at 128, the
/// answer `ok("guest")` at 256.
pub fn core_module(h: &Hostile) -> String {
    let name = if h.name.is_empty() { "hostile" } else { h.name };
    assert!(name.len() < 16);
    format!(
        r#"(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $r i32)
    (local.set $r (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (i32.add (local.get 3) (i32.const 8))))
    (local.get $r))
  (data (i32.const 16) "{name}")
  (data (i32.const 32) "0.1.0")
  (data (i32.const 48) "guest")
  {fields}
  (func (export "cmdscope:plugin/resolver@0.1.0#info") (result i32)
    {info}
    (i32.store (i32.const 64) (i32.const 48))
    (i32.store (i32.const 68) (i32.const 5))
    (i32.store (i32.const 128) (i32.const 16))
    (i32.store (i32.const 132) (i32.const {len}))
    (i32.store (i32.const 136) (i32.const 32))
    (i32.store (i32.const 140) (i32.const 5))
    (i32.store (i32.const 144) (i32.const 64))
    (i32.store (i32.const 148) (i32.const 1))
    (i32.const 128))
  (func (export "cmdscope:plugin/resolver@0.1.0#resolve")
    (param i64 i32 i64 i32 i32 i32 i32 i32 i32 i32) (result i32)
    {resolve}
    (i32.store8 (i32.const 256) (i32.const 0))
    (i32.store (i32.const 260) (i32.const 48))
    (i32.store (i32.const 264) (i32.const 5))
    (i32.const 256))
)"#,
        fields = h.fields,
        info = h.info,
        resolve = h.resolve,
        len = name.len(),
    )
}

/// A resolver component of interface 0.1's `resolver-plugin` world around `core_module(h)`.
pub fn resolver(h: &Hostile) -> Vec<u8> {
    component_of(&core_module(h))
}

/// Wraps a core module (WAT) exporting the resolver world's functions into a component.
pub fn component_of(core_wat: &str) -> Vec<u8> {
    let mut module = wat::parse_str(core_wat).expect("the test's WAT parses");
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve
        .push_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/wit/v0.1"))
        .expect("wit/v0.1 parses");
    let world = resolve
        .select_world(&[package], Some("resolver-plugin"))
        .expect("the resolver world");
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .expect("metadata embeds");
    wit_component::ComponentEncoder::default()
        .module(&module)
        .expect("a core module")
        .validate(true)
        .encode()
        .expect("the component encodes")
}

/// A function that keeps `locals` i64 locals live across a branch every four statements:
/// Cranelift's time grows about with the square of it (2,000 ~ 1 s, 6,000 ~ 10 s here).
pub fn slow_to_compile_fields(locals: usize) -> String {
    let mut f = String::from("(func $slow (param i64) (result i64)\n");
    for i in 0..locals {
        f.push_str(&format!("(local $l{i} i64)"));
    }
    f.push_str("(loop $top\n");
    for i in 0..locals {
        let prev = if i == 0 {
            "(local.get 0)".to_string()
        } else {
            format!("(local.get $l{})", i - 1)
        };
        f.push_str(&format!(
            "(local.set $l{i} (i64.add {prev} (local.get $l{i})))\n"
        ));
        if i % 4 == 0 {
            f.push_str(&format!("(br_if $top (i64.eqz (local.get $l{i})))\n"));
        }
    }
    f.push_str(")(local.get 0)");
    for i in 0..locals {
        f.push_str(&format!("(i64.add (local.get $l{i}))"));
    }
    f.push_str(")\n(export \"slow\" (func $slow))");
    f
}
