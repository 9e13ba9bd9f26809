//! The engine crate must stay pure protocol code (design.md §2): no GStreamer, GLib, tokio,
//! sockets, threads, files or clocks. Its Cargo.toml already keeps those crates out of reach;
//! this test also catches std facilities that need no dependency.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn engine_sources_use_no_io_no_clock_no_runtime() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("engine");
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    assert!(files.len() > 5, "engine sources not found under {}", root.display());
    let forbidden = [
        "gst::",
        "gstreamer",
        "glib::",
        "tokio",
        "std::net",
        "std::thread",
        "std::fs",
        "std::process",
        "Instant::now",
        "SystemTime",
        "UdpSocket",
        "TcpStream",
    ];
    let mut hits = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in forbidden {
                if code.contains(word) {
                    hits.push(format!("{}:{}: `{word}`", file.display(), n + 1));
                }
            }
        }
    }
    assert!(hits.is_empty(), "engine purity violated:\n{}", hits.join("\n"));

    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|s| s.split("\n[").next())
        .unwrap_or("");
    for krate in ["gstreamer", "glib", "tokio", "mio", "async-std", "socket2"] {
        assert!(
            !deps.lines().any(|l| l.trim_start().starts_with(krate)),
            "engine/Cargo.toml depends on {krate}"
        );
    }
}
