//! The `cwtch` binary (everything is in the library, so that its parsers can be fuzzed).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    cwtch_cli::main()
}
