//! The saved plan (`plan -o FILE`, applied with `apply FILE`): references
//! and ids only, never secrets.

use serde::{Deserialize, Serialize};

use crate::plan::HostPlan;

/// A saved plan.
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedPlan {
    /// [`FORMAT`].
    pub format: String,
    /// One plan per host.
    pub hosts: Vec<HostPlan>,
}

/// The saved plan's format tag.
pub const FORMAT: &str = "provision-plan-v2";

impl SavedPlan {
    /// A saved plan of these host plans.
    pub fn new(hosts: Vec<HostPlan>) -> Self {
        Self {
            format: FORMAT.into(),
            hosts,
        }
    }

    /// Reads a saved plan from its text; `name` names it in errors.
    pub fn parse(name: &str, text: &str) -> Result<Self, String> {
        let plan: SavedPlan =
            serde_json::from_str(text).map_err(|e| format!("{name} is not a saved plan: {e}"))?;
        if plan.format != FORMAT {
            return Err(format!(
                "{name} is a plan of format {:?}; this provision reads {FORMAT:?}",
                plan.format
            ));
        }
        Ok(plan)
    }
}

/// The saved plan among the arguments, if one is a `.json` file.
pub fn arg(selectors: &[String]) -> Option<&str> {
    match selectors {
        // A name ending in .json is a saved plan, even a missing one: no host
        // is named so, and "no such file" is the useful error.
        [one] if one.ends_with(".json") => Some(one),
        _ => None,
    }
}
