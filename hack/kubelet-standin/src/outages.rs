// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Zones that are out, from the local cloud's cloud-wide profiles (the JSON
//! files the controller reads with `--cloud-profile`): in each, the keys of
//! `outages`. The stand-in reads a file, or every `*.json` file of a
//! directory, so that tests running at once each keep a profile of their own.
//! It reads only that one field, its own way: it shares no code with the
//! controller.

use std::collections::BTreeSet;
use std::path::Path;

/// The zones that are out in the profile text (none if it cannot be read).
pub fn of_profile(text: &str) -> Result<BTreeSet<String>, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    Ok(value
        .get("outages")
        .and_then(|o| o.as_object())
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default())
}

/// The zones out in the profile at `path` (a file, or a directory of `*.json`
/// files); files that cannot be read or parsed are skipped and returned as
/// problems, to be logged.
pub fn read(path: &Path) -> (BTreeSet<String>, Vec<String>) {
    let files: Vec<_> = match std::fs::read_dir(path) {
        Ok(dir) => dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect(),
        Err(_) if path.is_file() => vec![path.to_path_buf()],
        Err(_) => Vec::new(),
    };
    let (mut zones, mut problems) = (BTreeSet::new(), Vec::new());
    for file in files {
        match std::fs::read_to_string(&file)
            .map_err(|e| e.to_string())
            .and_then(|t| of_profile(&t))
        {
            Ok(out) => zones.extend(out),
            Err(why) => problems.push(format!("{}: {why}", file.display())),
        }
    }
    (zones, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_of_a_directory_counts() {
        let dir = std::env::temp_dir().join(format!("standin-outages-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.json"), r#"{"outages": {"z1": "Unavailable"}}"#).unwrap();
        std::fs::write(
            dir.join("b.json"),
            r#"{"quota": {"total": 3}, "outages": {"z2": "ResourceExhausted"}}"#,
        )
        .unwrap();
        std::fs::write(dir.join("c.json"), "not json").unwrap();
        std::fs::write(dir.join("notes.txt"), r#"{"outages": {"z9": "x"}}"#).unwrap();
        let (zones, problems) = read(&dir);
        assert_eq!(zones, BTreeSet::from(["z1".to_owned(), "z2".to_owned()]));
        assert_eq!(problems.len(), 1, "{problems:?}");
        let (one, _) = read(&dir.join("a.json"));
        assert_eq!(one, BTreeSet::from(["z1".to_owned()]));
        assert!(read(&dir.join("missing")).0.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
