//! MIDI output through midir: existing ports by name or index, or a virtual port a DAW can
//! record from (Linux and macOS). A [`MidiOut`] is an [`EventSink`], so the sequencer drives it
//! exactly as it drives the synth.

use midir::{MidiOutput, MidiOutputConnection};

use super::AudioError;
use super::event::{Event, EventSink};

/// The client and virtual port name other programs see.
pub const VIRTUAL_PORT_NAME: &str = "diffroll";

fn midi_output() -> Result<MidiOutput, AudioError> {
    MidiOutput::new(VIRTUAL_PORT_NAME).map_err(|_| AudioError::NoMidiSystem)
}

fn port_names(out: &MidiOutput) -> Vec<String> {
    out.ports()
        .iter()
        .map(|p| {
            out.port_name(p)
                .unwrap_or_else(|_| "(port without a name)".to_string())
        })
        .collect()
}

/// Names of the MIDI output ports, in the order `--midi-out` indexes them.
pub fn list_output_ports() -> Result<Vec<String>, AudioError> {
    Ok(port_names(&midi_output()?))
}

/// Which of `names` the user means by `spec`: an index into the list, else the port whose name
/// is `spec` (exactly, then ignoring case), else the only port whose name contains it
/// (ignoring case), since ALSA names such as "FLUID Synth (1234):Synth input port" are long.
pub fn select_port(spec: &str, names: &[String]) -> Result<usize, AudioError> {
    if names.is_empty() {
        return Err(AudioError::NoMidiPorts);
    }
    let spec_trim = spec.trim();
    if let Ok(i) = spec_trim.parse::<usize>()
        && i < names.len()
    {
        return Ok(i);
    }
    if let Some(i) = names.iter().position(|n| n == spec_trim) {
        return Ok(i);
    }
    let lower = spec_trim.to_lowercase();
    if let Some(i) = names.iter().position(|n| n.to_lowercase() == lower) {
        return Ok(i);
    }
    let containing: Vec<usize> = (0..names.len())
        .filter(|&i| !lower.is_empty() && names[i].to_lowercase().contains(&lower))
        .collect();
    if let [only] = containing[..] {
        return Ok(only);
    }
    let available = names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{i}: {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    Err(AudioError::NoSuchPort {
        spec: spec.to_string(),
        available,
    })
}

/// An open MIDI output.
pub struct MidiOut {
    connection: MidiOutputConnection,
    name: String,
    send_errors: usize,
    /// Messages sent, so closing knows whether anything may still be on its way.
    sent: usize,
}

impl std::fmt::Debug for MidiOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MidiOut")
            .field("name", &self.name)
            .field("send_errors", &self.send_errors)
            .finish()
    }
}

impl MidiOut {
    /// Connects to an existing port chosen by index or name (see [`select_port`]).
    pub fn connect(spec: &str) -> Result<MidiOut, AudioError> {
        let out = midi_output()?;
        let names = port_names(&out);
        let index = select_port(spec, &names)?;
        let ports = out.ports();
        let (Some(port), Some(name)) = (ports.get(index), names.get(index)) else {
            return Err(AudioError::NoSuchPort {
                spec: spec.to_string(),
                available: names.join(", "),
            });
        };
        let connection =
            out.connect(port, VIRTUAL_PORT_NAME)
                .map_err(|e| AudioError::MidiConnect {
                    port: name.clone(),
                    reason: e.kind().to_string(),
                })?;
        Ok(MidiOut {
            connection,
            name: name.clone(),
            send_errors: 0,
            sent: 0,
        })
    }

    /// Opens a virtual output port called `name` that other programs (a DAW) connect to.
    #[cfg(unix)]
    pub fn open_virtual(name: &str) -> Result<MidiOut, AudioError> {
        use midir::os::unix::VirtualOutput;
        let connection =
            midi_output()?
                .create_virtual(name)
                .map_err(|e| AudioError::MidiConnect {
                    port: name.to_string(),
                    reason: e.kind().to_string(),
                })?;
        Ok(MidiOut {
            connection,
            name: name.to_string(),
            send_errors: 0,
            sent: 0,
        })
    }

    /// Virtual ports need a MIDI system that has them; Windows' does not.
    #[cfg(not(unix))]
    pub fn open_virtual(_name: &str) -> Result<MidiOut, AudioError> {
        Err(AudioError::NoVirtualPorts)
    }

    /// The port's name as the system shows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Messages the port refused (a device unplugged mid-play, say).
    pub fn send_errors(&self) -> usize {
        self.send_errors
    }
}

/// How long a closing JACK connection waits so its last messages go out: midir hands them to
/// JACK's process callback, which runs once a period (up to 4096 frames, 93 ms at 44.1 kHz),
/// and closing the client first drops them: the stop's note-offs would never arrive.
#[cfg(feature = "jack")]
const JACK_DRAIN: std::time::Duration = std::time::Duration::from_millis(250);

impl Drop for MidiOut {
    fn drop(&mut self) {
        // ALSA, CoreMIDI and WinMM deliver each message as it is sent; JACK delivers later.
        #[cfg(feature = "jack")]
        if self.sent > 0 {
            std::thread::sleep(JACK_DRAIN);
        }
    }
}

impl EventSink for MidiOut {
    fn send(&mut self, event: Event) {
        let (bytes, len) = event.to_midi();
        self.sent += 1;
        if let Err(e) = self.connection.send(&bytes[..len]) {
            if self.send_errors == 0 {
                tracing::warn!("MIDI output '{}': {e}", self.name);
            }
            self.send_errors += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        [
            "Midi Through:Midi Through Port-0 14:0",
            "FLUID Synth (4321):Synth input port (4321:0) 128:0",
            "Launchkey Mini:Launchkey Mini MIDI 1 20:0",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn ports_by_index_name_or_unique_part() {
        let names = names();
        assert_eq!(select_port("1", &names).unwrap(), 1);
        assert_eq!(select_port(&names[2], &names).unwrap(), 2);
        assert_eq!(select_port("fluid", &names).unwrap(), 1);
        assert_eq!(select_port(" LAUNCHKEY ", &names).unwrap(), 2);
    }

    #[test]
    fn ambiguous_or_missing_ports_say_what_exists() {
        let names = names();
        // "midi" is in two names, "9" is no index and in no name.
        for spec in ["midi", "9", ""] {
            let err = select_port(spec, &names).unwrap_err().to_string();
            assert!(err.contains("0: Midi Through"), "{err}");
        }
        assert!(matches!(
            select_port("0", &[]),
            Err(AudioError::NoMidiPorts)
        ));
    }
}
