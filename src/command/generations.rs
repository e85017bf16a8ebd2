//! `provision generations HOST` and `provision rollback HOST [--to N]`: the
//! generations a host keeps, and switching back to one from its store.

use std::path::Path;
use std::sync::Arc;

use super::{Repo, operator};
use crate::deploy::{self, HostResult, Options, Prepared, host, rollback};
use crate::error::{Error, Exit};
use crate::report::{AppliedHost, Document};
use crate::ui::{Style, clean_line, plan as show, progress::Display};

/// Runs `generations`.
pub fn list(root: &Path, host: &str, options: &Options, style: Style) -> Result<Exit, Error> {
    let repo = Repo::open(root)?;
    let h = repo.host(host)?.clone();
    let runtime = super::runtime();
    let connect = options.connect();
    let gens = runtime.block_on(async {
        let t = host::connect(&h, root, &connect).await?;
        let gens = host::generations(&t).await;
        t.close().await;
        gens
    });
    let gens = gens.map_err(|e| Error::Host(e.to_string()))?;
    if style.json {
        let list: Vec<_> = gens
            .iter()
            .map(|g| {
                serde_json::json!({
                    "generation": g.record.number,
                    "generation_id": g.record.generation,
                    "time": g.record.time,
                    "by": g.record.by,
                    "files": g.record.files,
                    "status": g.status,
                    "current": g.current,
                    "unconfirmed": g.unconfirmed,
                })
            })
            .collect();
        let body = serde_json::json!({"host": host, "generations": list});
        crate::ui::json::print(style, &Document::new("generations", true, body));
        return Ok(Exit::Ok);
    }
    if gens.is_empty() {
        println!("{host} has no generation yet: run `provision apply {host}`.");
        return Ok(Exit::Ok);
    }
    println!(
        "{}",
        style.paint(
            "1",
            &format!(
                "{:>4}  {:<20}  {:<12}  {:>5}  {:<24}  STATUS",
                "GEN", "APPLIED (UTC)", "ID", "FILES", "BY"
            )
        )
    );
    for g in &gens {
        let status = if g.status == "ok" {
            style.paint("32", "ok")
        } else {
            style.paint("31", &clean_line(&g.status))
        };
        println!(
            "{:>4}  {:<20}  {:<12}  {:>5}  {:<24}  {status}{}",
            g.record.number,
            g.record.time,
            &g.record.generation[..12.min(g.record.generation.len())],
            g.record.files.len(),
            clean_line(&g.record.by),
            if g.unconfirmed {
                style.paint("1;33", "  (current, not confirmed yet)")
            } else if g.current {
                style.paint("1", "  (current)")
            } else {
                String::new()
            }
        );
    }
    Ok(Exit::Ok)
}

/// Runs `rollback`.
pub fn rollback(
    root: &Path,
    host: &str,
    to: Option<u64>,
    yes: bool,
    options: &Options,
    style: Style,
) -> Result<Exit, Error> {
    let repo = Repo::open(root)?;
    let h = repo.host(host)?.clone();
    let runtime = super::runtime();
    let connect = options.connect();
    let prepared = runtime.block_on(async {
        let t = host::connect(&h, root, &connect).await?;
        let planned = rollback::plan(&t, host, to).await;
        let (target, obs, plan) = match planned {
            Ok(planned) => planned,
            Err(e) => {
                t.close().await;
                return Err(e);
            }
        };
        Ok(Prepared {
            host: h.clone(),
            transport: t,
            state: None,
            target,
            observed: obs,
            plan,
            root: root.to_path_buf(),
            secrets: Vec::new(),
        })
    });
    let prepared = prepared.map_err(|e| Error::Host(e.to_string()))?;
    if !style.json {
        println!("{}", show::host(&prepared.plan, style));
    }
    if prepared.plan.has_changes() && prepared.plan.errors.is_empty() {
        let question = format!("Roll {host} back to generation {}?", prepared.plan.number);
        if !operator::confirm(&question, yes)? {
            eprintln!("Not rolled back.");
            runtime.block_on(prepared.transport.close());
            return Ok(Exit::Error);
        }
    }
    let display = Arc::new(Display::for_style(style));
    let who = operator::who();
    // The definition describes the newest generation, not the one switched
    // back to: there is nothing to verify the older one against.
    let options = Options {
        verify: None,
        ..options.clone()
    };
    let mut results = runtime.block_on(deploy::switch_all(
        vec![prepared],
        &options,
        &who,
        &operator::now_utc(),
        display.clone(),
    ));
    display.clear();
    let (plan, result) = results.pop().expect("one host");
    if style.json {
        let body = serde_json::json!({"hosts": [AppliedHost::switched(&plan, &result)]});
        crate::ui::json::print(style, &Document::new("rollback", result.ok(), body));
    } else {
        match &result {
            HostResult::Switched { generation, .. } => println!(
                "{}",
                style.paint("1;32", &format!("{host} is at generation {generation}."))
            ),
            HostResult::Unchanged { .. } => println!("{host} is already at that generation."),
            HostResult::VerifyFailed { .. } => {}
            r => {
                let error = format!("{host}: {}", r.error().unwrap_or_default());
                style.host_error(&error, r.log());
            }
        }
    }
    Ok(if result.ok() { Exit::Ok } else { Exit::Error })
}
