//! From a folder of MIDI files to training data: corpus scanning (which files read, which are
//! rejected and why, how many 8-bar windows each style has). Training loops, fine-tuning and
//! checkpoints build on this.

pub mod corpus;
