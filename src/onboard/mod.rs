//! Bringing a fresh host into the fleet (`provision onboard`), the pure
//! half: what the host's first answer means ([`keyscan`]), what its facts
//! say ([`facts`]), what a failed install means ([`install`]), the
//! `hosts/NAME.kdl` text that records it ([`host_text`]), and the guarded
//! sshd hardening ([`harden`]). The effects are in `command/onboard.rs`.

pub mod facts;
pub mod harden;
pub mod host_text;
pub mod install;
pub mod keyscan;

/// Whether `name` can be a host's name and the file name `hosts/NAME.kdl`:
/// letters, digits, `.`, `-` and `_`, starting with a letter or digit (so
/// it names no other directory and no hidden file).
pub fn valid_name(name: &str) -> bool {
    name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// `USER@ADDR` split into its login user and address; `None` when either
/// is missing or the address could not be an SSH host name.
pub fn split_destination(destination: &str) -> Option<(&str, &str)> {
    let (user, addr) = destination.rsplit_once('@')?;
    let user_ok = !user.is_empty()
        && !user.starts_with('-')
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    let addr_ok = !addr.is_empty()
        && !addr.starts_with('-')
        && addr
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    (user_ok && addr_ok).then_some((user, addr))
}

/// An agent to onboard the host with: `agent "NAME" { use "TEMPLATE" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSpec {
    /// The agent's name (its unit is `agent-NAME.service`).
    pub name: String,
    /// The module it uses, an agent template of the repository.
    pub template: String,
}

/// `--agent NAME=TEMPLATE`, or `--agent TEMPLATE` for an agent named after
/// its template; `Err` says what is wrong and what to write.
pub fn parse_agent(spec: &str) -> Result<AgentSpec, String> {
    let (name, template) = spec.split_once('=').unwrap_or((spec, spec));
    if template.is_empty() || template.contains(['"', '\\', '\n']) {
        return Err(format!(
            "--agent {spec:?}: name an agent template, a module of modules/ (e.g. --agent hello, or --agent bot=hello)"
        ));
    }
    crate::model::values::check_name(name).map_err(|e| {
        format!("--agent {spec:?}: {e}; name the agent with --agent NAME={template}")
    })?;
    Ok(AgentSpec {
        name: name.to_string(),
        template: template.to_string(),
    })
}

/// The first of `wanted` (what `--module`/`--agent` name) that is not one
/// of the repository's `modules`, with a hint: a near name, or the list.
pub fn unknown_module<'a>(
    wanted: impl IntoIterator<Item = &'a str>,
    modules: &[String],
) -> Option<String> {
    let missing = wanted
        .into_iter()
        .find(|w| !modules.iter().any(|m| m == w))?;
    let hint = match crate::diagnostic::did_you_mean(missing, modules.iter().map(String::as_str)) {
        Some(near) => format!("did you mean `{near}`?"),
        None if modules.is_empty() => "modules/ holds none".to_string(),
        None => format!("modules/ holds {}", modules.join(", ")),
    };
    Some(format!(
        "no module `{missing}` (modules/{missing}.kdl or modules/{missing}/module.kdl): {hint}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_name_a_template() {
        let a = |name: &str, template: &str| {
            Ok(AgentSpec {
                name: name.into(),
                template: template.into(),
            })
        };
        assert_eq!(parse_agent("hello"), a("hello", "hello"));
        assert_eq!(parse_agent("bot=python-agent"), a("bot", "python-agent"));
        // A template whose name is no agent name needs NAME=.
        let e = parse_agent("Python_Agent").unwrap_err();
        assert!(e.contains("--agent NAME=Python_Agent"), "{e}");
        assert!(parse_agent("bot=").is_err());
        assert!(parse_agent("=x").is_err());
        assert!(parse_agent("bot=a\"b").is_err());
    }

    #[test]
    fn unknown_modules_say_what_is_there() {
        let modules = ["agent".to_string(), "hello".to_string()];
        assert_eq!(unknown_module(["hello", "agent"], &modules), None);
        let e = unknown_module(["helo"], &modules).unwrap();
        assert!(
            e.contains("no module `helo`") && e.contains("did you mean `hello`?"),
            "{e}"
        );
        let e = unknown_module(["zzzzzz"], &modules).unwrap();
        assert!(e.contains("modules/ holds agent, hello"), "{e}");
    }

    #[test]
    fn names_and_destinations() {
        assert!(valid_name("web-1"));
        assert!(valid_name("a.b_c"));
        for bad in ["", "../x", ".hidden", "a/b", "-x", "a b"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert_eq!(
            split_destination("root@10.0.0.2"),
            Some(("root", "10.0.0.2"))
        );
        assert_eq!(split_destination("deploy@::1"), Some(("deploy", "::1")));
        for bad in ["10.0.0.2", "@x", "root@", "-oProxy@x", "root@-x", "a@b c"] {
            assert_eq!(split_destination(bad), None, "{bad:?}");
        }
    }
}
