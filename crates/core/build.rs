//! The commit simsweep is built from, recorded with every run (`code_version`).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let sha = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!("cargo:rustc-env=SIMSWEEP_GIT_SHA={sha}");
}
