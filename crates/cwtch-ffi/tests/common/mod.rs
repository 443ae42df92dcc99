//! Loading the built `libCwtch.so` (the one cargo built for this test run).

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

/// The `libCwtch.so` cargo built for this test run: `target/<profile>/deps/libCwtch.so`, next
/// to this test's executable (`cargo test` does not copy it up to `target/<profile>/`).
pub fn library_path() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let so = exe
        .parent()
        .expect("target/<profile>/deps")
        .join("libCwtch.so");
    assert!(so.exists(), "{} was not built", so.display());
    so
}

/// The header's declarations: (return type, name, parameter types), in C spelling.
pub fn header_functions() -> Vec<(String, String, Vec<String>)> {
    let header = include_str!("../../include/libCwtch.h");
    let mut out = Vec::new();
    for line in header.lines() {
        let Some(decl) = line.strip_prefix("extern ") else {
            continue;
        };
        let Some(decl) = decl.strip_suffix(");") else {
            continue; // `extern "C" {`
        };
        let (head, params) = decl.split_once('(').expect("a declaration");
        let (ret, name) = head.rsplit_once(' ').expect("return type and name");
        let params = params
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (ty, _name) = p.rsplit_once(' ').expect("type and name");
                ty.trim().to_owned()
            })
            .collect();
        out.push((ret.trim().to_owned(), name.to_owned(), params));
    }
    out
}
