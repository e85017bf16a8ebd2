//! The `hosts/NAME.kdl` that onboard writes, from typed values.

/// What the new host file says.
#[derive(Debug, Clone)]
pub struct NewHost<'a> {
    /// The host's name.
    pub name: &'a str,
    /// `USER@ADDR`.
    pub destination: &'a str,
    /// The SSH port.
    pub port: u16,
    /// The private key to log in with, when the operator named one.
    pub identity: Option<&'a str>,
    /// The login is not root and runs scripts through `sudo -n` (`sudo=#true`).
    pub sudo: bool,
    /// The pinned key, `ssh-ed25519 AAAA…`.
    pub host_key: &'a str,
    /// Its fingerprint, for the comment.
    pub fingerprint: &'a str,
    /// Modules the host uses.
    pub modules: &'a [String],
    /// Agents, each made of one template.
    pub agents: &'a [super::AgentSpec],
    /// The day it was onboarded (`YYYY-MM-DD`), for the comment.
    pub date: &'a str,
}

/// A KDL string literal.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The file's text.
pub fn render(h: &NewHost) -> String {
    let mut ssh = format!("    ssh {} port={}", quoted(h.destination), h.port);
    if let Some(identity) = h.identity {
        ssh.push_str(&format!(" identity={}", quoted(identity)));
    }
    if h.sudo {
        ssh.push_str(" sudo=#true");
    }
    let mut out = format!(
        "// Onboarded {} by `provision onboard`; host key {}.\nhost {} {{\n{ssh}\n    host-key {}\n",
        h.date,
        h.fingerprint,
        quoted(h.name),
        quoted(h.host_key),
    );
    for m in h.modules {
        out.push_str(&format!("    use {}\n", quoted(m)));
    }
    for a in h.agents {
        out.push_str(&format!(
            "    agent {} {{\n        use {}\n    }}\n",
            quoted(&a.name),
            quoted(&a.template)
        ));
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_field() {
        let modules = ["ops-host".to_string(), "x\"y".to_string()];
        let text = render(&NewHost {
            name: "web-1",
            destination: "deploy@10.0.0.2",
            port: 2222,
            identity: Some("/home/me/.ssh/id_ed25519"),
            sudo: true,
            host_key: "ssh-ed25519 AAAAC3",
            fingerprint: "SHA256:abc",
            modules: &modules,
            agents: &[],
            date: "2026-12-01",
        });
        assert_eq!(
            text,
            "// Onboarded 2026-12-01 by `provision onboard`; host key SHA256:abc.\n\
             host \"web-1\" {\n    ssh \"deploy@10.0.0.2\" port=2222 identity=\"/home/me/.ssh/id_ed25519\" sudo=#true\n    \
             host-key \"ssh-ed25519 AAAAC3\"\n    use \"ops-host\"\n    use \"x\\\"y\"\n}\n"
        );
        let bare = render(&NewHost {
            identity: None,
            modules: &[],
            ..NewHost {
                name: "a",
                destination: "root@h",
                port: 22,
                identity: None,
                sudo: false,
                host_key: "k",
                fingerprint: "f",
                modules: &[],
                agents: &[],
                date: "d",
            }
        });
        assert!(
            !bare.contains("identity") && !bare.contains("use ") && !bare.contains("sudo"),
            "{bare}"
        );
    }

    fn module(name: &str, text: &str) -> crate::source::Source {
        crate::source::Source {
            path: format!("modules/{name}/module.kdl"),
            kind: crate::source::SourceKind::Module,
            text: text.into(),
        }
    }

    #[test]
    fn the_text_passes_check() {
        // The host module and agent template `provision init` writes.
        let modules = ["m".to_string(), "host".to_string()];
        let text = render(&NewHost {
            name: "web-1",
            destination: "deploy@10.0.0.2",
            port: 22,
            identity: Some("/k"),
            sudo: true,
            host_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC8+J7XH4Ja6bY2nh35Id6I9YrwU0oMuYUSqNaff57rs",
            fingerprint: "SHA256:ZI4WjU65dw+o2evmNznkqPOF5O/BYhWCbt28LWZp3Kg",
            modules: &modules,
            agents: &[crate::onboard::AgentSpec {
                name: "bot".into(),
                template: "hello".into(),
            }],
            date: "2026-12-01",
        });
        let sources = crate::source::SourceSet::new(vec![
            crate::source::Source {
                path: "hosts/web-1.kdl".into(),
                kind: crate::source::SourceKind::Host,
                text,
            },
            crate::source::Source {
                path: "modules/m.kdl".into(),
                kind: crate::source::SourceKind::Module,
                text: "tags \"web\"\n".into(),
            },
            module(
                "host",
                include_str!("../../scaffold/modules/host/module.kdl"),
            ),
            module(
                "hello",
                include_str!("../../scaffold/modules/hello/module.kdl"),
            ),
            module("agent", include_str!("../../modules/agent/module.kdl")),
        ]);
        let (fleet, diags) = crate::compile(&sources);
        assert!(!diags.has_errors(), "{diags:?}");
        let h = fleet.host("web-1").unwrap();
        assert_eq!(
            h.host_key.as_deref(),
            Some(
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC8+J7XH4Ja6bY2nh35Id6I9YrwU0oMuYUSqNaff57rs"
            )
        );
        assert_eq!(h.tags, ["web"]);
        assert_eq!(h.agents.len(), 1);
        assert_eq!(h.agents[0].name, "bot");
        assert!(
            matches!(&h.connection, crate::model::Connection::Ssh { sudo: true, declared_at, .. } if declared_at == "hosts/web-1.kdl:3"),
            "{:?}",
            h.connection
        );
    }
}
