//! The config loader: any TOML text yields a typed config or an error,
//! never a panic. Texts naming a file to read (`*_file`) are skipped: the
//! loader would read whatever path they name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use s3gate::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.contains("_file") {
        return;
    }
    if let Err(e) = Config::parse(text) {
        assert!(!e.to_string().is_empty());
    }
});
