//! Classifier-free guidance scales: one for every style, or a style's own where one number does
//! not suit them all. Measured on the shipped model, folk needs more of its label than the others
//! to stay one voice, and the same push makes classical pieces four times too dense.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::roll::Style;

/// How strongly sampling follows the style label: `scale` for every style that `per_style` does
/// not name. 1 uses the conditional model alone (half the cost); above 1 pushes away from the
/// unlabelled model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Guidance {
    #[serde(rename = "guidance")]
    pub scale: f32,
    #[serde(rename = "style_guidance", skip_serializing_if = "BTreeMap::is_empty")]
    pub per_style: BTreeMap<Style, f32>,
}

impl Default for Guidance {
    fn default() -> Self {
        Guidance::uniform(1.0)
    }
}

impl From<f32> for Guidance {
    fn from(scale: f32) -> Self {
        Guidance::uniform(scale)
    }
}

impl Guidance {
    /// The same scale for every style.
    pub fn uniform(scale: f32) -> Self {
        Guidance {
            scale,
            per_style: BTreeMap::new(),
        }
    }

    pub fn for_style(&self, style: Style) -> f32 {
        self.per_style.get(&style).copied().unwrap_or(self.scale)
    }

    /// Whether sampling these styles needs the unlabelled model too (a scale other than 1).
    pub fn guides(&self, styles: &[Style]) -> bool {
        styles
            .iter()
            .any(|&s| (self.for_style(s) - 1.0).abs() > 1e-6)
    }

    /// Why these scales cannot be used, if they cannot: each must be a finite number ≥ 0.
    pub fn check(&self) -> Result<(), String> {
        let bad = |g: f32| !g.is_finite() || g < 0.0;
        if bad(self.scale) {
            return Err(format!(
                "guidance {} is not a number ≥ 0 (1 = off)",
                self.scale
            ));
        }
        match self.per_style.iter().find(|(_, g)| bad(**g)) {
            Some((style, g)) => Err(format!(
                "{style} guidance {g} is not a number ≥ 0 (1 = off)"
            )),
            None => Ok(()),
        }
    }
}

/// Written as the command line takes it: `1.5`, or `1,folk=1.5`.
impl fmt::Display for Guidance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.scale)?;
        for (style, g) in &self.per_style {
            write!(f, ",{style}={g}")?;
        }
        Ok(())
    }
}

/// A guidance setting the command line cannot use.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "guidance '{given}': {reason}; give G for every style (1 = off), optionally followed by STYLE=G for a style of its own, e.g. 1,folk=1.5"
)]
pub struct BadGuidance {
    pub given: String,
    pub reason: String,
}

/// `G` for every style, then any `STYLE=G`; without a bare `G`, the styles not named get 1.
impl FromStr for Guidance {
    type Err = BadGuidance;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = |reason: String| BadGuidance {
            given: s.to_string(),
            reason,
        };
        let number = |text: &str| {
            text.trim()
                .parse::<f32>()
                .map_err(|_| fail(format!("'{}' is not a number", text.trim())))
        };
        let mut guidance = Guidance::uniform(1.0);
        let mut scale_given = false;
        for part in s.split(',') {
            match part.split_once('=') {
                Some((style, g)) => {
                    let style: Style = style.trim().parse().map_err(|e| fail(format!("{e}")))?;
                    if guidance.per_style.insert(style, number(g)?).is_some() {
                        return Err(fail(format!("{style} is given twice")));
                    }
                }
                None if scale_given => return Err(fail("two scales for every style".into())),
                None => {
                    guidance.scale = number(part)?;
                    scale_given = true;
                }
            }
        }
        guidance.check().map_err(fail)?;
        Ok(guidance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_style_of_its_own_overrides_the_scale_for_every_style() {
        let g: Guidance = "1.25,folk=1.5".parse().unwrap();
        assert_eq!(g.for_style(Style::Folk), 1.5);
        assert_eq!(g.for_style(Style::Chorale), 1.25);
        assert!(g.guides(&[Style::Chorale]));
        let only_folk: Guidance = "folk=1.5".parse().unwrap();
        assert_eq!(only_folk.scale, 1.0);
        assert!(!only_folk.guides(&[Style::Chorale, Style::Classical]));
        assert!(only_folk.guides(&[Style::Chorale, Style::Folk]));
        assert!(!Guidance::uniform(1.0).guides(&Style::ALL));
    }

    #[test]
    fn guidance_prints_as_it_parses_and_refuses_nonsense() {
        for text in ["1", "2.5", "1,folk=1.5", "1.5,chorale=2,folk=1.25"] {
            let g: Guidance = text.parse().unwrap();
            assert_eq!(g.to_string(), text);
            assert_eq!(g.to_string().parse::<Guidance>().unwrap(), g);
        }
        for bad in [
            "",
            "x",
            "1,2",
            "-1",
            "NaN",
            "inf",
            "jazz=2",
            "folk=1,folk=2",
            "folk=-0.5",
            "folk=",
        ] {
            let e = bad.parse::<Guidance>().unwrap_err();
            assert!(e.to_string().contains("e.g. 1,folk=1.5"), "{bad}: {e}");
        }
    }

    #[test]
    fn cards_without_style_guidance_read_as_one_scale() {
        let g: Guidance = serde_json::from_str(r#"{"guidance": 2.0}"#).unwrap();
        assert_eq!(g, Guidance::uniform(2.0));
        assert_eq!(serde_json::to_string(&g).unwrap(), r#"{"guidance":2.0}"#);
        let g: Guidance =
            serde_json::from_str(r#"{"guidance": 1.0, "style_guidance": {"folk": 1.5}}"#).unwrap();
        assert_eq!(g.for_style(Style::Folk), 1.5);
    }
}
