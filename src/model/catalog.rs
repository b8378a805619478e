//! Where models live: the base model shipped in `models/base`, and the user's own (fine-tuned)
//! models, one folder each under the platform's data folder. A model is named either by a
//! folder path or by the name of a saved model.

use std::path::{Path, PathBuf};

use super::store::{CARD_FILE, ModelError};

/// Environment variable that moves the user's data folder (tests, portable installs).
pub const DATA_DIR_ENV: &str = "DIFFROLL_DATA_DIR";
/// The name the shipped model goes by in pickers and on the command line.
pub const BASE_NAME: &str = "base";
const SHIPPED_BASE: &str = "models/base";

/// A model a user can pick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelEntry {
    pub name: String,
    pub dir: PathBuf,
    /// Shipped with diffroll (read-only to the app), as opposed to one the user made.
    pub shipped: bool,
}

/// The shipped base model's folder: `models/base` under the working directory, else the one in
/// the source checkout this binary was built from. `None` when neither holds a model card.
pub fn shipped_base() -> Option<PathBuf> {
    [
        PathBuf::from(SHIPPED_BASE),
        Path::new(env!("CARGO_MANIFEST_DIR")).join(SHIPPED_BASE),
    ]
    .into_iter()
    .find(|dir| dir.join(CARD_FILE).is_file())
}

/// The folder that holds the user's models (`<data dir>/models`); `None` if the platform has
/// no home folder and `DIFFROLL_DATA_DIR` is unset.
pub fn user_models_dir() -> Option<PathBuf> {
    let data = match std::env::var_os(DATA_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => directories::ProjectDirs::from("org", "diffroll", "diffroll")?
            .data_dir()
            .to_path_buf(),
    };
    Some(data.join("models"))
}

/// Every model a user can pick: the shipped base first, then saved models by name.
pub fn list() -> Vec<ModelEntry> {
    let mut entries: Vec<ModelEntry> = shipped_base()
        .map(|dir| ModelEntry {
            name: BASE_NAME.to_string(),
            dir,
            shipped: true,
        })
        .into_iter()
        .collect();
    if let Some(root) = user_models_dir() {
        entries.extend(list_in(&root));
    }
    entries
}

/// The saved models in `root`, sorted by name; folders without a card are skipped.
pub fn list_in(root: &Path) -> Vec<ModelEntry> {
    let Ok(read) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut entries: Vec<ModelEntry> = read
        .filter_map(Result::ok)
        .filter(|e| e.path().join(CARD_FILE).is_file())
        .filter_map(|e| {
            Some(ModelEntry {
                name: e.file_name().to_str()?.to_string(),
                dir: e.path(),
                shipped: false,
            })
        })
        .collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    entries
}

/// A model folder from what a user typed: an existing folder with a card, `base`, or a saved
/// model's name.
pub fn resolve(spec: &Path) -> Result<PathBuf, ModelError> {
    if spec.join(CARD_FILE).is_file() {
        return Ok(spec.to_path_buf());
    }
    if spec == Path::new(BASE_NAME) || spec == Path::new(SHIPPED_BASE) {
        return shipped_base().ok_or(ModelError::NoBaseModel);
    }
    if let Some(name) = spec.to_str().filter(|s| is_valid_name(s))
        && let Some(root) = user_models_dir()
        && root.join(name).join(CARD_FILE).is_file()
    {
        return Ok(root.join(name));
    }
    Err(ModelError::NotFound(spec.to_path_buf()))
}

/// Why a saved model could not be renamed or deleted.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(
        "'{0}' cannot name a model: use letters, digits, spaces, '-', '_' or '.', up to 64 characters, not 'base'"
    )]
    BadName(String),
    #[error("no saved model named '{0}'")]
    Missing(String),
    #[error("a model named '{0}' exists already")]
    Exists(String),
    #[error("no folder for saved models on this system; set DIFFROLL_DATA_DIR")]
    NoDataDir,
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn saved(name: &str) -> Result<PathBuf, CatalogError> {
    if !is_valid_name(name) {
        return Err(CatalogError::BadName(name.to_string()));
    }
    let root = user_models_dir().ok_or(CatalogError::NoDataDir)?;
    Ok(root.join(name))
}

/// The folder a new saved model called `name` goes to: refused if the name is not valid, the
/// system has no data folder, or the name is taken.
pub fn new_model_dir(name: &str) -> Result<PathBuf, CatalogError> {
    let dir = saved(name)?;
    if dir.exists() {
        return Err(CatalogError::Exists(name.to_string()));
    }
    Ok(dir)
}

/// Renames a saved model (one rename of its folder: atomic). The shipped model cannot be.
pub fn rename(from: &str, to: &str) -> Result<PathBuf, CatalogError> {
    let src = saved(from)?;
    if !src.join(CARD_FILE).is_file() {
        return Err(CatalogError::Missing(from.to_string()));
    }
    let dst = new_model_dir(to)?;
    std::fs::rename(&src, &dst).map_err(|source| CatalogError::Io {
        path: src.clone(),
        source,
    })?;
    // The card carries the name too; the folder is what counts if this write fails.
    if let Ok(mut card) = super::ModelCard::load(&dst) {
        card.name = to.to_string();
        let _ = card.save(&dst);
    }
    Ok(dst)
}

/// Deletes a saved model. The folder is first renamed out of the list, so a half-finished
/// delete never leaves a half-model that looks usable.
pub fn delete(name: &str) -> Result<(), CatalogError> {
    let dir = saved(name)?;
    if !dir.join(CARD_FILE).is_file() {
        return Err(CatalogError::Missing(name.to_string()));
    }
    let trash = dir.with_file_name(format!(".deleting-{name}-{}", std::process::id()));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CatalogError::Io { path, source }
    };
    std::fs::rename(&dir, &trash).map_err(io(&dir))?;
    std::fs::remove_dir_all(&trash).map_err(io(&trash))
}

/// Names of saved models become folder names: letters, digits, space, `-`, `_` and `.`, not
/// starting with a dot, at most 64 characters, and not the shipped model's name.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= 64
        && !name.starts_with('.')
        && name.trim() == name
        && name != BASE_NAME
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_valid_name("my chorales-2"));
        for bad in [
            "",
            ".hidden",
            "a/b",
            "..",
            "base",
            " x",
            "x\n",
            &"n".repeat(65),
        ] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn rename_and_delete_saved_models() {
        let dir = tempfile::tempdir().unwrap();
        // The only test in this crate that sets the variable; the lib tests never read it
        // elsewhere.
        unsafe { std::env::set_var(DATA_DIR_ENV, dir.path()) };
        let root = user_models_dir().unwrap();
        std::fs::create_dir_all(root.join("mine")).unwrap();
        let card = super::super::ModelCard::new("mine", super::super::AutoencoderConfig::new());
        card.save(&root.join("mine")).unwrap();
        assert!(matches!(
            rename("mine", "base"),
            Err(CatalogError::BadName(_))
        ));
        assert!(matches!(rename("nope", "x"), Err(CatalogError::Missing(_))));
        let moved = rename("mine", "ours").unwrap();
        assert_eq!(super::super::ModelCard::load(&moved).unwrap().name, "ours");
        assert_eq!(resolve(Path::new("ours")).unwrap(), moved);
        delete("ours").unwrap();
        assert!(list_in(&root).is_empty());
        assert!(
            std::fs::read_dir(&root).unwrap().next().is_none(),
            "nothing left behind"
        );
        assert!(matches!(delete("ours"), Err(CatalogError::Missing(_))));
    }

    #[test]
    fn lists_only_folders_with_cards() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("b")).unwrap();
        std::fs::write(dir.path().join("b").join(CARD_FILE), "{}").unwrap();
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a").join(CARD_FILE), "{}").unwrap();
        std::fs::create_dir_all(dir.path().join("empty")).unwrap();
        let names: Vec<String> = list_in(dir.path()).into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["a", "b"]);
    }
}
