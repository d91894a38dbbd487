//! The layers `src/lib.rs` lists: each top-level module names (`crate::…`) only modules of a
//! lower layer, so the module graph has no cycle and no arrow that runs back up.

use std::path::Path;

/// Each module and its layer, lowest first, as `src/lib.rs` lists them.
const LAYERS: &[(&str, u8)] = &[
    ("domain", 0),
    ("store", 1),
    ("config", 1),
    ("metrics", 1),
    ("crypto", 2),
    ("audit", 3),
    ("mail", 3),
    ("auth", 4),
    ("error", 5),
    ("http", 6),
    ("startup", 7),
    ("cli", 8),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(name, _)| *name == module).map(|(_, layer)| *layer)
}

/// Every `.rs` file under `path` (or `path` itself).
fn sources(path: &Path, found: &mut Vec<std::path::PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap().flatten() {
            sources(&entry.path(), found);
        }
    } else if path.is_file() && path.extension().is_some_and(|e| e == "rs") {
        found.push(path.to_path_buf());
    }
}

/// The top-level modules a source file names as `crate::<module>`.
fn named_modules(text: &str) -> Vec<String> {
    text.match_indices("crate::")
        .map(|(at, _)| {
            let rest = &text[at + "crate::".len()..];
            rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
        })
        .collect()
}

#[test]
fn every_module_names_only_modules_of_a_lower_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = Vec::new();
    for (module, own) in LAYERS {
        let mut files = Vec::new();
        sources(&src.join(module), &mut files);
        sources(&src.join(format!("{module}.rs")), &mut files);
        assert!(!files.is_empty(), "no source for {module}");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for named in named_modules(&text) {
                let Some(target) = layer(&named) else { continue };
                if named != *module && target >= *own {
                    wrong.push(format!("{} names crate::{named}", file.display()));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "imports that run across or up the layers: {wrong:#?}");
}
