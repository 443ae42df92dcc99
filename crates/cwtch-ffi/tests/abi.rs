//! Every function declared in `include/libCwtch.h` (Go autobindings v0.0.12, from the
//! crates.io crate `libcwtch` 0.8.0) is exported by the built `libCwtch.so`, and declared in
//! `src/ffi.rs` with the same C signature.

mod common;

use std::collections::BTreeMap;

/// The C spelling of a Rust type of `src/ffi.rs`.
fn c_type(rust: &str) -> String {
    match rust.trim() {
        "*mut c_char" => "char*",
        "c_int" => "int",
        "c_uint" => "unsigned int",
        "c_char" => "char",
        other => panic!("unexpected type in ffi.rs: {other}"),
    }
    .to_owned()
}

/// `src/ffi.rs`'s exported functions: name → (return type, parameter types), C spelling.
fn rust_functions() -> BTreeMap<String, (String, Vec<String>)> {
    let src = include_str!("../src/ffi.rs");
    let mut out = BTreeMap::new();
    for chunk in src.split("pub unsafe extern \"C\" fn ").skip(1) {
        let sig = chunk.split_once('{').expect("a body").0;
        let (name, rest) = sig.split_once('(').expect("parameters");
        let (params, ret) = rest.rsplit_once(')').expect("end of parameters");
        let params = params
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| c_type(p.split_once(':').expect("name: type").1))
            .collect();
        let ret = match ret.trim().strip_prefix("->") {
            Some(t) => c_type(t),
            None => "void".to_owned(),
        };
        out.insert(name.trim().to_owned(), (ret, params));
    }
    out
}

#[test]
fn header_parses_to_the_sixty_one_functions_of_v0_0_12() {
    let h = common::header_functions();
    assert_eq!(h.len(), 61, "{h:?}");
    assert!(h.iter().any(|(r, n, p)| r == "int"
        && n == "c_StartCwtch"
        && p == &["char*", "int", "char*", "int"]));
    assert!(h.iter().any(|(r, n, p)| r == "char*"
        && n == "c_GetMessages"
        && p == &["char*", "int", "int", "int", "unsigned int"]));
}

#[test]
fn every_header_function_is_declared_with_its_signature() {
    let rust = rust_functions();
    let header = common::header_functions();
    for (ret, name, params) in &header {
        let Some((rret, rparams)) = rust.get(name) else {
            panic!("{name} is not defined in src/ffi.rs");
        };
        assert_eq!((rret, rparams), (ret, params), "signature of {name}");
    }
    assert_eq!(
        rust.len(),
        header.len(),
        "ffi.rs exports only the header's functions"
    );
}

#[test]
fn every_header_function_is_exported_by_the_library() {
    let path = common::library_path();
    // SAFETY: loading our own library runs no initialisers beyond Rust's (none of ours).
    let lib = unsafe { libloading::Library::new(&path) }.expect("dlopen libCwtch.so");
    for (_, name, _) in common::header_functions() {
        // SAFETY: only the symbol's address is looked up; nothing is called.
        let sym = unsafe { lib.get::<*const ()>(name.as_bytes()) };
        assert!(sym.is_ok(), "{name} is not exported by {}", path.display());
    }
}
