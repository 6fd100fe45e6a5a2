//! Foreign-key order: every table after the tables it references, and a clear
//! error naming the tables of a cycle.

use super::def::Registered;
use crate::error::{Error, Result};
use std::sync::Arc;

/// Orders `tables` so that each comes after the tables its foreign keys reference
/// (Kahn's algorithm, keeping registration order among tables that are free). A
/// reference to a table outside the list is assumed to exist already.
pub(crate) fn order(tables: Vec<Arc<Registered>>) -> Result<Vec<Arc<Registered>>> {
    let index_of = |name: &str| tables.iter().position(|t| t.def.name == name);
    // deps[i]: the other listed tables that table i references.
    let mut deps: Vec<Vec<usize>> = Vec::with_capacity(tables.len());
    for (i, table) in tables.iter().enumerate() {
        let mut mine = Vec::new();
        for fk in &table.def.foreign_keys {
            let Some(j) = index_of(&fk.table) else {
                continue;
            };
            if tables[j].def.column(&fk.references).is_none() {
                return Err(Error::schema(
                    &table.def.name,
                    Some(&fk.column),
                    format!(
                        "the foreign key references {}.{}, which the registered table {} does not have",
                        fk.table, fk.references, fk.table
                    ),
                ));
            }
            if j != i && !mine.contains(&j) {
                mine.push(j);
            }
        }
        deps.push(mine);
    }
    let mut done = vec![false; tables.len()];
    let mut out = Vec::with_capacity(tables.len());
    while out.len() < tables.len() {
        let next = (0..tables.len()).find(|&i| !done[i] && deps[i].iter().all(|&j| done[j]));
        match next {
            Some(i) => {
                done[i] = true;
                out.push(tables[i].clone());
            }
            None => {
                let cycle = find_cycle(&deps, &done);
                let names: Vec<&str> = cycle.iter().map(|&i| tables[i].def.name.as_str()).collect();
                return Err(Error::schema(
                    names[0],
                    None,
                    format!(
                        "the foreign keys form a cycle ({} -> {}); create one of these tables without its foreign key, or use migrations",
                        names.join(" -> "),
                        names[0]
                    ),
                ));
            }
        }
    }
    Ok(out)
}

/// A cycle among the tables not `done`, each of which references another one:
/// following references from any of them must come back round.
fn find_cycle(deps: &[Vec<usize>], done: &[bool]) -> Vec<usize> {
    let mut path: Vec<usize> = Vec::new();
    let mut at = (0..deps.len())
        .find(|&i| !done[i])
        .unwrap_or_else(|| unreachable!("called when stuck"));
    loop {
        if let Some(start) = path.iter().position(|&i| i == at) {
            return path.split_off(start);
        }
        path.push(at);
        at = deps[at]
            .iter()
            .copied()
            .find(|&j| !done[j])
            .unwrap_or_else(|| unreachable!("a stuck table references another stuck table"));
    }
}
