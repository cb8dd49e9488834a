//! TensorBoard event files in the run folder's `tb/` (docs/interface.md lists the tags): scalars only,
//! written without TensorFlow. An event file is a sequence of TFRecords (u64 little-endian length, masked
//! CRC32C of the length bytes, the payload, masked CRC32C of the payload), each payload one `Event`
//! protobuf; the first says `file_version: "brain.Event:2"`. Each life of a process writes its own file
//! (`events.out.tfevents.<unix secs>.<host>.<pid>`): TensorBoard reads every file of the folder as one run.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// TensorFlow's `Event` (tensorflow/core/util/event.proto), the fields written here.
#[derive(Clone, PartialEq, prost::Message)]
struct Event {
    #[prost(double, tag = "1")]
    wall_time: f64,
    #[prost(int64, tag = "2")]
    step: i64,
    #[prost(oneof = "What", tags = "3, 5, 6")]
    what: Option<What>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum What {
    #[prost(string, tag = "3")]
    FileVersion(String),
    #[prost(message, tag = "5")]
    Summary(Summary),
    #[prost(message, tag = "6")]
    SessionLog(SessionLog),
}

#[derive(Clone, PartialEq, prost::Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<SummaryValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SummaryValue {
    #[prost(string, tag = "1")]
    tag: String,
    /// A member of a oneof in TensorFlow's proto: `optional` so that 0.0 is still written (a plain proto3
    /// scalar at its default is left out, and TensorBoard would then see a value without a kind).
    #[prost(float, optional, tag = "2")]
    simple_value: Option<f32>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SessionLog {
    /// `SessionLog.SessionStatus`: 1 = START.
    #[prost(int32, tag = "1")]
    status: i32,
}

const SESSION_START: i32 = 1;

/// CRC-32C (Castagnoli), as TFRecord frames use it.
const CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// TFRecord's masked CRC: a CRC stored next to the data it covers is rotated and offset, so that
/// CRCs of data that itself holds CRCs stay well distributed.
pub fn masked_crc32c(bytes: &[u8]) -> u32 {
    // TensorFlow's `((crc >> 15) | (crc << 17)) + 0xa282ead8`.
    CRC32C.checksum(bytes).rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Appends one TFRecord holding `payload` to `out`.
pub fn frame_record(payload: &[u8], out: &mut Vec<u8>) {
    let len = (payload.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&masked_crc32c(payload).to_le_bytes());
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// One event file, open for appending.
pub struct EventWriter {
    path: PathBuf,
    file: File,
    /// Bytes of whole records in the file: a write that fails half-way is cut back to this, so that a
    /// full disk never leaves a torn record that would end every reader's view of the file there.
    len: u64,
}

impl EventWriter {
    /// Creates `dir` if needed and a new event file in it, named after this machine's `host` name and
    /// this process, starting with the file-version record.
    pub fn create(dir: &Path, host: &str) -> io::Result<EventWriter> {
        fs::create_dir_all(dir)?;
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let stem = format!("events.out.tfevents.{secs}.{host}.{}", std::process::id());
        // One process may open a folder twice within a second (a test, a folder reused): never share a file.
        let (path, file) = (0..)
            .map(|i| dir.join(if i == 0 { stem.clone() } else { format!("{stem}.{i}") }))
            .find_map(|path| match OpenOptions::new().append(true).create_new(true).open(&path) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => None,
                opened => Some(opened.map(|f| (path, f))),
            })
            .expect("an unused file name")?;
        let mut writer = EventWriter { path, file, len: 0 };
        let version =
            Event { wall_time: unix_now(), step: 0, what: Some(What::FileVersion("brain.Event:2".into())) };
        if let Err(e) = writer.write_events(&[version]) {
            let _ = fs::remove_file(&writer.path);
            return Err(e);
        }
        Ok(writer)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Marks a restart at env step `step` (a resumed run): TensorBoard then drops what earlier files
    /// hold from `step` on, the part of the previous life after the checkpoint this one resumed from.
    pub fn session_start(&mut self, step: u64) -> io::Result<()> {
        let start = What::SessionLog(SessionLog { status: SESSION_START });
        self.write_events(&[Event { wall_time: unix_now(), step: step as i64, what: Some(start) }])
    }

    /// Writes `scalars` (tag, value) as one event at `step`, straight to the file: a reader sees them
    /// as soon as this returns.
    pub fn write_scalars(&mut self, step: u64, scalars: &[(String, f64)]) -> io::Result<()> {
        let value = scalars
            .iter()
            .map(|(tag, v)| SummaryValue { tag: tag.clone(), simple_value: Some(*v as f32) })
            .collect();
        let summary = What::Summary(Summary { value });
        self.write_events(&[Event { wall_time: unix_now(), step: step as i64, what: Some(summary) }])
    }

    fn write_events(&mut self, events: &[Event]) -> io::Result<()> {
        let mut bytes = Vec::new();
        for e in events {
            frame_record(&prost::Message::encode_to_vec(e), &mut bytes);
        }
        match self.file.write_all(&bytes) {
            Ok(()) => {
                self.len += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Appends go to the end: cutting the file back makes the next record follow whole ones.
                let _ = self.file.set_len(self.len);
                Err(e)
            }
        }
    }
}

/// Removes the event files in `dir` (an older run's, when a new run reuses its folder).
pub fn remove_event_files(dir: &Path) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        entries => entries?,
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with("events.out.tfevents.") {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_and_its_mask_have_the_known_values() {
        // The CRC-32C check value (RFC 3720's iSCSI CRC), and TensorFlow's masking of it.
        assert_eq!(CRC32C.checksum(b"123456789"), 0xE306_9283);
        // Masked by hand: 0xE3069283 rotated right by 15 is 0x2507C60D, plus 0xA282EAD8.
        assert_eq!(masked_crc32c(b"123456789"), 0xC78A_B0E5);
        assert_eq!(CRC32C.checksum(b""), 0);
    }

    #[test]
    fn records_are_framed_as_tfrecords() {
        let mut out = Vec::new();
        frame_record(b"123456789", &mut out);
        frame_record(b"", &mut out);
        assert_eq!(out.len(), (8 + 4 + 9 + 4) + (8 + 4 + 4));
        assert_eq!(&out[..8], &9u64.to_le_bytes());
        assert_eq!(&out[8..12], &masked_crc32c(&9u64.to_le_bytes()).to_le_bytes());
        assert_eq!(&out[12..21], b"123456789");
        assert_eq!(&out[21..25], &masked_crc32c(b"123456789").to_le_bytes());
        assert_eq!(&out[25..33], &0u64.to_le_bytes());
    }

    /// Reads back every record of an event file, checking both CRCs of each.
    fn read_records(path: &Path) -> Vec<Event> {
        let bytes = fs::read(path).unwrap();
        let (mut at, mut events) = (0, Vec::new());
        while at < bytes.len() {
            let len_bytes = &bytes[at..at + 8];
            let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
            assert_eq!(bytes[at + 8..at + 12], masked_crc32c(len_bytes).to_le_bytes());
            let payload = &bytes[at + 12..at + 12 + len];
            assert_eq!(bytes[at + 12 + len..at + 16 + len], masked_crc32c(payload).to_le_bytes());
            events.push(<Event as prost::Message>::decode(payload).unwrap());
            at += 16 + len;
        }
        events
    }

    #[test]
    fn an_event_file_starts_with_its_version_and_holds_scalars_even_zero() {
        let dir = std::env::temp_dir().join(format!("spikerl-tb-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut w = EventWriter::create(&dir, "test-host").unwrap();
        let other = EventWriter::create(&dir, "test-host").unwrap();
        assert_ne!(w.path(), other.path(), "two writers in one second get two files");
        w.write_scalars(500, &[("eval/return_mean".into(), -1234.5), ("train/actor_loss".into(), 0.0)])
            .unwrap();
        w.session_start(300).unwrap();
        let events = read_records(w.path());
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].what, Some(What::FileVersion("brain.Event:2".into())));
        assert_eq!(events[1].step, 500);
        let Some(What::Summary(s)) = &events[1].what else { panic!("{:?}", events[1]) };
        assert_eq!(s.value[0], SummaryValue { tag: "eval/return_mean".into(), simple_value: Some(-1234.5) });
        assert_eq!(s.value[1].simple_value, Some(0.0), "a zero is written, not left out");
        assert_eq!(events[2].what, Some(What::SessionLog(SessionLog { status: SESSION_START })));
        assert_eq!(events[2].step, 300);
        remove_event_files(&dir).unwrap();
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        fs::remove_dir_all(&dir).unwrap();
    }
}
