//! The Kubernetes manifests in deploy/kubernetes validate against the
//! Kubernetes schemas (kubernetes-validate from the test venv, strict: no
//! unknown fields), and they hold the pieces a replicated gateway needs.
// Tests fail loudly (unwrapping is how they say what broke), may print
// timings, cast small test values, and keep their helpers undocumented.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    unreachable_pub,
    missing_docs
)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::venv_bin;

/// Kubernetes version the manifests are validated against.
const KUBERNETES_VERSION: &str = "1.33.0";

fn manifests() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// `kubernetes-validate --strict` on `file` → (success, output).
fn validate(file: &Path) -> (bool, String) {
    let output = Command::new(venv_bin("kubernetes-validate"))
        .args(["--strict", "--kubernetes-version", KUBERNETES_VERSION])
        .arg(file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success() && !text.contains("ERROR"), text)
}

#[test]
fn every_manifest_validates_against_the_kubernetes_schemas() {
    let files = manifests();
    let mut kinds = Vec::new();
    for file in &files {
        let (ok, output) = validate(file);
        assert!(ok, "{}:\n{output}", file.display());
        assert!(output.contains("passed"), "{}:\n{output}", file.display());
        let text = std::fs::read_to_string(file).unwrap();
        kinds.extend(
            text.lines()
                .filter_map(|l| l.strip_prefix("kind: "))
                .map(str::to_owned),
        );
    }
    for kind in [
        "Namespace",
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} in {kinds:?}");
    }
}

/// The validator is no rubber stamp: a wrong type and an unknown field fail.
#[test]
fn the_validator_refuses_a_broken_deployment() {
    let deployment =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/deployment.yaml");
    let text = std::fs::read_to_string(deployment).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (what, broken) in [
        (
            "replicas as a string",
            text.replace("replicas: 2", "replicas: two"),
        ),
        (
            "an unknown field",
            text.replace("readOnlyRootFilesystem: true", "readOnlyRootFS: true"),
        ),
    ] {
        assert_ne!(broken, text, "{what}: nothing replaced");
        let file = dir.path().join("broken.yaml");
        std::fs::write(&file, broken).unwrap();
        let (ok, output) = validate(&file);
        assert!(!ok, "{what} passed:\n{output}");
    }
}

/// The pod is hardened as README's "Scaling out" says.
#[test]
fn the_deployment_is_hardened_and_probed() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/deployment.yaml"),
    )
    .unwrap();
    for needed in [
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "allowPrivilegeEscalation: false",
        "drop: [\"ALL\"]",
        "type: RuntimeDefault",
        "path: /healthz",
        "path: /readyz",
        "requests:",
        "limits:",
        "secretName: s3gate",
        "configMap:",
    ] {
        assert!(text.contains(needed), "deployment.yaml lacks {needed:?}");
    }
}
