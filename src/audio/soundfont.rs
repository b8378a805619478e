//! SoundFonts: finding the ones installed where Linux distributions, macOS and Windows users
//! put them, and loading one for rustysynth.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::AudioError;

/// Folders searched for `.sf2` files, most system-wide first; missing ones are skipped later.
pub fn soundfont_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let home = directories::BaseDirs::new();
    if cfg!(target_os = "macos") {
        dirs.push("/Library/Audio/Sounds/Banks".into());
        if let Some(base) = &home {
            dirs.push(base.home_dir().join("Library/Audio/Sounds/Banks"));
        }
    } else if cfg!(windows) {
        dirs.push(r"C:\soundfonts".into());
        if let Some(base) = &home {
            dirs.push(base.home_dir().join("SoundFonts"));
            dirs.push(base.home_dir().join(r"Documents\SoundFonts"));
            dirs.push(base.data_local_dir().join("soundfonts"));
        }
    } else {
        for d in [
            "/usr/share/sounds/sf2",
            "/usr/share/soundfonts",
            "/usr/local/share/soundfonts",
            "/usr/share/sounds/soundfonts",
        ] {
            dirs.push(d.into());
        }
        if let Some(base) = &home {
            // $XDG_DATA_HOME/soundfonts, ~/.local/share/soundfonts by default.
            dirs.push(base.data_dir().join("soundfonts"));
            dirs.push(base.home_dir().join(".soundfonts"));
        }
    }
    dirs
}

fn is_sf2(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("sf2"))
}

/// Every `.sf2` under `dirs` (two levels of subfolders, enough for "GeneralUser GS/x.sf2"):
/// its path, the file it really is, and whether the path is a link.
fn walk_sf2(dirs: &[PathBuf]) -> Vec<(PathBuf, PathBuf, bool)> {
    let mut found = Vec::new();
    for dir in dirs {
        for entry in walkdir::WalkDir::new(dir)
            .max_depth(3)
            .follow_links(true)
            .into_iter()
            .flatten()
        {
            let path = entry.path();
            if !entry.file_type().is_file() || !is_sf2(path) {
                continue;
            }
            let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
            found.push((path.to_path_buf(), real, entry.path_is_symlink()));
        }
    }
    found
}

/// `.sf2` files in `dirs` and their subfolders, each file once however many links point at it
/// (under its own name, not a link's such as Debian's `default-GM.sf2`), sorted by file name.
pub fn find_soundfonts_in(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut by_file: std::collections::HashMap<PathBuf, (PathBuf, bool)> = Default::default();
    for (path, real, is_link) in walk_sf2(dirs) {
        let keep = by_file
            .get(&real)
            .is_none_or(|(_, kept_link)| *kept_link && !is_link);
        if keep {
            by_file.insert(real, (path, is_link));
        }
    }
    let mut found: Vec<PathBuf> = by_file.into_values().map(|(path, _)| path).collect();
    found.sort_by(|a, b| a.file_name().cmp(&b.file_name()).then(a.cmp(b)));
    found
}

/// Installed SoundFonts, to offer the user.
pub fn find_soundfonts() -> Vec<PathBuf> {
    find_soundfonts_in(&soundfont_dirs())
}

/// What the user means by `arg`: a file that exists, else an installed SoundFont whose file
/// name or stem is `arg` (ignoring case), so `--soundfont FluidR3_GM` works.
pub fn resolve_soundfont(arg: &Path) -> Result<PathBuf, AudioError> {
    if arg.is_file() {
        return Ok(arg.to_path_buf());
    }
    let wanted = arg.to_string_lossy().to_lowercase();
    let named = |s: Option<&std::ffi::OsStr>| {
        s.is_some_and(|s| s.to_string_lossy().to_lowercase() == wanted)
    };
    // Links count here: `--soundfont default-GM` is a name users know.
    walk_sf2(&soundfont_dirs())
        .into_iter()
        .map(|(path, _, _)| path)
        .find(|p| named(p.file_name()) || named(p.file_stem()))
        .ok_or_else(|| AudioError::SoundFontNotFound(arg.display().to_string()))
}

/// Reads and checks a SoundFont. Everything rustysynth needs to play it is validated here, so
/// a bad file is an error now rather than a failure in the audio callback.
pub fn load_soundfont(path: &Path) -> Result<Arc<rustysynth::SoundFont>, AudioError> {
    let err = |reason: String| AudioError::SoundFont {
        path: path.display().to_string(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut reader = std::io::BufReader::new(file);
    let sound_font = rustysynth::SoundFont::new(&mut reader).map_err(|e| err(e.to_string()))?;
    // rustysynth indexes the first preset for unknown programs: an empty bank would panic later.
    if sound_font.get_presets().is_empty() {
        return Err(err("it contains no presets".to_string()));
    }
    Ok(Arc::new(sound_font))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sf2_files_once_in_subfolders_and_ignores_others() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("GeneralUser GS");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(dir.path().join("b.sf2"), b"x").unwrap();
        std::fs::write(sub.join("a.SF2"), b"x").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(dir.path().join("b.sf2"), dir.path().join("default.sf2"))
            .unwrap();
        let missing = dir.path().join("missing");
        let found = find_soundfonts_in(&[dir.path().to_path_buf(), missing]);
        let names: Vec<_> = found
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.SF2", "b.sf2"], "the link is not listed twice");
    }

    #[test]
    fn system_folders_are_listed() {
        let dirs = soundfont_dirs();
        assert!(!dirs.is_empty());
        if cfg!(target_os = "linux") {
            assert!(dirs.contains(&PathBuf::from("/usr/share/sounds/sf2")));
            assert!(
                dirs.iter()
                    .any(|d| d.ends_with(".local/share/soundfonts") || d.ends_with("soundfonts"))
            );
        }
    }

    #[test]
    fn bad_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.sf2");
        std::fs::write(&garbage, b"RIFF\x10\0\0\0sfbkLIST\xff\xff\xff\x7fINFO").unwrap();
        let err = load_soundfont(&garbage).unwrap_err().to_string();
        assert!(err.contains("garbage.sf2"), "{err}");
        let midi = dir.path().join("song.sf2");
        std::fs::write(&midi, b"MThd\0\0\0\x06\0\x01\0\x01\x01\xe0").unwrap();
        assert!(load_soundfont(&midi).is_err());
        assert!(load_soundfont(&dir.path().join("none.sf2")).is_err());
        assert!(matches!(
            resolve_soundfont(Path::new("surely-no-such-soundfont-anywhere")),
            Err(AudioError::SoundFontNotFound(_))
        ));
    }
}
