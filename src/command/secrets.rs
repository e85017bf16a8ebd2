//! Resolves secret references to values, at apply time or for
//! `render --with-secrets`. Values never leave this module except inside
//! [`Secret`]s.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::error::Error;
use crate::model::{AlertKind, Host, WebhookUrl};
use crate::render::SecretValues;
use crate::secret::{Secret, SecretSource};

/// Every secret source a host uses.
pub fn sources(host: &Host) -> BTreeSet<SecretSource> {
    let mut out: BTreeSet<SecretSource> = host
        .agents
        .iter()
        .flat_map(|a| a.secrets.iter().map(|s| s.source.clone()))
        .collect();
    for ch in &host.alerts {
        match &ch.kind {
            AlertKind::Telegram { token, .. } => {
                out.insert(token.source.clone());
            }
            AlertKind::Webhook {
                url: WebhookUrl::Secret(r),
                ..
            } => {
                out.insert(r.source.clone());
            }
            _ => {}
        }
    }
    out
}

/// Resolves the host's secrets. `root` is the repository (for `file:` paths
/// and as the working directory of `cmd:`).
pub fn resolve(root: &Path, host: &Host) -> Result<SecretValues, Error> {
    let mut out = SecretValues::new();
    for source in sources(host) {
        let fail = |message: String| Error::Secret {
            source_ref: source.to_string(),
            message,
        };
        let value = match &source {
            SecretSource::Env(name) => std::env::var(name)
                .map_err(|_| fail(format!("the environment variable {name} is not set")))?,
            SecretSource::File(p) => {
                let path = root.join(p);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
                text.strip_suffix('\n').unwrap_or(&text).to_string()
            }
            SecretSource::Cmd(cmd) => {
                let out = Command::new("sh")
                    .arg("-c")
                    .arg(cmd)
                    .current_dir(root)
                    .output()
                    .map_err(|e| fail(format!("cannot run: {e}")))?;
                if !out.status.success() {
                    // The command's stderr could echo the secret; report only the status.
                    return Err(fail(format!("the command exited with {}", out.status)));
                }
                let text = String::from_utf8(out.stdout)
                    .map_err(|_| fail("the command printed bytes that are not UTF-8".into()))?;
                text.strip_suffix('\n').unwrap_or(&text).to_string()
            }
            SecretSource::Age(_) => {
                return Err(fail("age-encrypted secrets are not supported by this build yet; use env:, file: or cmd: (for instance `cmd:age -d -i ~/.config/age/key.txt secrets/x.age`)".into()));
            }
        };
        out.insert(source.to_string(), Secret::new(value));
    }
    Ok(out)
}
