//! Plugin files on disk: which names in a folder are plugins, how a file is told apart from
//! its earlier versions, and reading one without trusting it.
//!
//! A plugin folder is operator input that may hold anything: a FIFO (opening it for reading
//! blocks until a writer comes), a symlink to `/dev/zero` (reading never ends), a sparse file of
//! gigabytes. So a file is only ever opened non-blocking, must be a regular file once opened,
//! and its size is checked against the limit before a byte is read.

use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::io::Read;
use std::path::Path;
use std::time::SystemTime;

use super::LoadError;

/// A plugin file's identity within its folder: its file name. The folder is watched without
/// recursion, so the name alone says which file an event or a listing is about, however the
/// folder itself was named (relative, absolute, through a symlink, with `..` in it).
pub(crate) type FileKey = OsString;

/// The key of `path` when it names a plugin file: `*.wasm`, not hidden. Hidden files are where
/// deploy tools write before renaming into place (`.tiered.wasm.partial`), and where Kubernetes
/// keeps a mounted ConfigMap's versions (`..data/`).
pub(crate) fn plugin_key(path: &Path) -> Option<FileKey> {
    let name = path.file_name()?;
    is_plugin_name(name).then(|| name.to_os_string())
}

pub(crate) fn is_plugin_name(name: &OsStr) -> bool {
    let bytes = name.as_encoded_bytes();
    bytes.ends_with(b".wasm") && bytes.len() > ".wasm".len() && !bytes.starts_with(b".")
}

/// What a file looked like: enough to tell "unchanged since the last look" without reading it.
/// The inode is part of it, so a file replaced by a rename (or a symlink pointed elsewhere, as
/// Kubernetes does) is seen as new even with the same size and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub len: u64,
    pub modified: Option<SystemTime>,
    pub device: u64,
    pub inode: u64,
}

impl Stamp {
    fn of(meta: &Metadata) -> Stamp {
        #[cfg(unix)]
        let (device, inode) = {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino())
        };
        #[cfg(not(unix))]
        let (device, inode) = (0, 0);
        Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            device,
            inode,
        }
    }
}

impl Stamp {
    /// Whether a file with this stamp is surely the one last seen with `earlier`. Without a
    /// modification time nothing is sure.
    pub(crate) fn same_as(&self, earlier: &Stamp) -> bool {
        self == earlier && self.modified.is_some()
    }
}

/// What `path` is now, following symlinks, without opening it: its stamp, and whether it is
/// a regular file. `None`: it is gone.
pub(crate) fn look(path: &Path) -> Option<(Stamp, Result<(), LoadError>)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((Stamp::of(&meta), check_kind(&meta)))
}

/// Reads a plugin file: opened non-blocking, refused unless it is a regular file of at most
/// `max_bytes` (checked before reading, and again while reading, as a file may grow).
pub(crate) fn read(path: &Path, max_bytes: u64) -> Result<(Vec<u8>, Stamp), LoadError> {
    let file = open_nonblocking(path).map_err(|e| LoadError::Read(e.to_string()))?;
    let meta = file
        .metadata()
        .map_err(|e| LoadError::Read(e.to_string()))?;
    check_kind(&meta)?;
    let stamp = Stamp::of(&meta);
    if stamp.len > max_bytes {
        return Err(LoadError::TooLarge {
            len: stamp.len,
            max: max_bytes,
        });
    }
    let mut bytes = Vec::with_capacity(stamp.len as usize);
    file.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| LoadError::Read(e.to_string()))?;
    if bytes.len() as u64 > max_bytes {
        return Err(LoadError::TooLarge {
            len: bytes.len() as u64,
            max: max_bytes,
        });
    }
    Ok((bytes, stamp))
}

fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    options.open(path)
}

fn check_kind(meta: &Metadata) -> Result<(), LoadError> {
    if meta.is_file() {
        return Ok(());
    }
    Err(LoadError::NotAFile(kind_name(meta).to_string()))
}

fn kind_name(meta: &Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_char_device() {
            return "a character device";
        }
        if kind.is_block_device() {
            return "a block device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}

/// The file name of `path`, for messages and events.
pub(crate) fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names() {
        for yes in ["a.wasm", "tiered-resolver.wasm", "x.wasm.wasm"] {
            assert!(is_plugin_name(OsStr::new(yes)), "{yes}");
        }
        for no in [
            ".wasm",
            ".a.wasm",
            "..a.wasm",
            "a.wasm.tmp",
            "a.wat",
            "..data",
        ] {
            assert!(!is_plugin_name(OsStr::new(no)), "{no}");
        }
        assert_eq!(
            plugin_key(Path::new("./plugins/../plugins/a.wasm")),
            Some(OsString::from("a.wasm"))
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("f.wasm");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert_eq!(
            read(&fifo, 1 << 20).unwrap_err(),
            LoadError::NotAFile("a FIFO".into())
        );
        assert_eq!(
            look(&fifo).unwrap().1.unwrap_err(),
            LoadError::NotAFile("a FIFO".into())
        );
    }

    #[test]
    fn a_large_file_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.wasm");
        let file = File::create(&path).unwrap();
        file.set_len(768 << 20).unwrap(); // sparse: costs no disk
        assert_eq!(
            read(&path, 1 << 20).unwrap_err(),
            LoadError::TooLarge {
                len: 768 << 20,
                max: 1 << 20
            }
        );
    }

    #[cfg(unix)]
    #[test]
    fn dev_zero_is_refused() {
        assert_eq!(
            read(Path::new("/dev/zero"), 1 << 20).unwrap_err(),
            LoadError::NotAFile("a character device".into())
        );
    }
}
