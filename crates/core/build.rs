//! The commit simsweep is built from, recorded with every run (`code_version`). Rebuilt when the
//! checkout moves to another commit (HEAD, the branch it names, packed refs).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        // Only files that exist: cargo reruns a build script on every build for a missing one.
        let mut watch = vec![format!("{dir}/HEAD"), format!("{dir}/packed-refs")];
        if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watch.push(format!("{dir}/{r}"));
        }
        for f in watch.iter().filter(|f| std::path::Path::new(f).is_file()) {
            println!("cargo:rerun-if-changed={f}");
        }
    }
    let sha = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_default();
    println!("cargo:rustc-env=SIMSWEEP_GIT_SHA={sha}");
}
