//! [`Style`]: the four musical styles, one per corpus folder, with their names on the command
//! line and in cards, their label index in the model, and their usual tempo.

use std::fmt;
use std::str::FromStr;

/// The musical styles the base model knows: one per corpus folder.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Style {
    Chorale,
    Polyphony,
    Classical,
    Folk,
}

impl Style {
    pub const ALL: [Style; 4] = [
        Style::Chorale,
        Style::Polyphony,
        Style::Classical,
        Style::Folk,
    ];

    /// The corpus folder name, also used on the command line and in model cards.
    pub fn name(self) -> &'static str {
        match self {
            Style::Chorale => "chorale",
            Style::Polyphony => "polyphony",
            Style::Classical => "classical",
            Style::Folk => "folk",
        }
    }

    /// Position in [`Style::ALL`]: the label the model's style embedding takes.
    pub fn index(self) -> usize {
        self as usize
    }

    /// A tempo that suits the style, for files that state none: chorales walk, folk dances.
    pub fn default_tempo(self) -> f32 {
        match self {
            Style::Chorale => 76.0,
            Style::Polyphony => 88.0,
            Style::Classical => 108.0,
            Style::Folk => 112.0,
        }
    }

    pub fn from_index(i: usize) -> Option<Style> {
        Style::ALL.get(i).copied()
    }
}

impl fmt::Display for Style {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A style name that is not one of [`Style::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown style '{0}' (expected one of: chorale, polyphony, classical, folk)")]
pub struct UnknownStyle(pub String);

impl FromStr for Style {
    type Err = UnknownStyle;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Style::ALL
            .into_iter()
            .find(|style| style.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownStyle(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for style in Style::ALL {
            assert_eq!(style.name().parse::<Style>(), Ok(style));
            assert_eq!(Style::from_index(style.index()), Some(style));
        }
        assert_eq!("Folk".parse::<Style>(), Ok(Style::Folk));
        assert!("jazz".parse::<Style>().is_err());
    }
}
