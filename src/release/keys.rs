//! The fleet's release key: ed25519 (`ed25519-dalek`). `cmdscope release keygen` writes a
//! secret key (the publisher's) and a public key (every worker's `--verify-key`); a worker
//! given a public key serves only releases signed by its secret key.
//!
//! Files are one line of hex after a comment line, so an operator can read, copy and diff
//! them; the secret file is written private (mode 0600).

use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

const SECRET_HEADER: &str = "# cmdscope release signing key (secret: keep it with the publisher)";
const PUBLIC_HEADER: &str = "# cmdscope release verify key (public: give it to every worker)";

/// The publisher's key.
pub struct SecretKey(SigningKey);

/// The key workers verify releases with.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.public().id())
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.id())
    }
}

impl SecretKey {
    /// A new key from the operating system's randomness.
    pub fn generate() -> anyhow::Result<SecretKey> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|e| anyhow::anyhow!("no randomness for a key from the system: {e}"))?;
        Ok(SecretKey(SigningKey::from_bytes(&seed)))
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The signature of `message`, as hex.
    pub fn sign(&self, message: &[u8]) -> String {
        hex(&self.0.sign(message).to_bytes())
    }

    pub fn read(path: &Path) -> anyhow::Result<SecretKey> {
        let bytes: [u8; 32] = read_hex(path, "signing")?;
        Ok(SecretKey(SigningKey::from_bytes(&bytes)))
    }

    /// Writes `NAME.key` (this key, private) and `NAME.pub` (its public half); refuses to
    /// overwrite either.
    pub fn write_pair(
        &self,
        name: &Path,
    ) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
        let secret = name.with_extension("key");
        let public = name.with_extension("pub");
        for path in [&secret, &public] {
            if path.exists() {
                anyhow::bail!(
                    "{} exists: choose another name (keys are never overwritten)",
                    path.display()
                );
            }
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&secret)?;
        std::io::Write::write_all(
            &mut file,
            format!("{SECRET_HEADER}\n{}\n", hex(&self.0.to_bytes())).as_bytes(),
        )?;
        std::fs::write(
            &public,
            format!("{PUBLIC_HEADER}\n{}\n", hex(self.public().0.as_bytes())),
        )?;
        Ok((secret, public))
    }
}

impl PublicKey {
    pub fn read(path: &Path) -> anyhow::Result<PublicKey> {
        let bytes: [u8; 32] = read_hex(path, "verify")?;
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|e| anyhow::anyhow!("{}: not an ed25519 public key: {e}", path.display()))
    }

    /// Whether `signature` (hex) is this key's signature of `message`.
    pub fn verifies(&self, message: &[u8], signature: &str) -> bool {
        let Some(bytes) = unhex::<64>(signature) else {
            return false;
        };
        self.0
            .verify(message, &Signature::from_bytes(&bytes))
            .is_ok()
    }

    /// A short name for the key in messages: the first 8 bytes, hex.
    pub fn id(&self) -> String {
        hex(&self.0.as_bytes()[..8])
    }
}

fn read_hex<const N: usize>(path: &Path, what: &str) -> anyhow::Result<[u8; N]> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read the {what} key {}: {e}", path.display()))?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or("");
    unhex::<N>(line).ok_or_else(|| {
        anyhow::anyhow!(
            "{}: not a {what} key ({} hex digits expected; make one with `cmdscope release keygen`)",
            path.display(),
            N * 2
        )
    })
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let text = text.trim();
    if text.len() != N * 2 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_with_its_key_only_and_keys_round_trip_through_files() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::generate().unwrap();
        let (secret, public) = key.write_pair(&dir.path().join("fleet")).unwrap();
        assert!(
            key.write_pair(&dir.path().join("fleet")).is_err(),
            "never overwritten"
        );
        let signature = SecretKey::read(&secret).unwrap().sign(b"release 1");
        let verify = PublicKey::read(&public).unwrap();
        assert!(verify.verifies(b"release 1", &signature));
        assert!(
            !verify.verifies(b"release 2", &signature),
            "another message"
        );
        let other = SecretKey::generate().unwrap();
        assert!(
            !other.public().verifies(b"release 1", &signature),
            "another key"
        );
        assert!(!verify.verifies(b"release 1", "not hex"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "the secret key is private");
        }
        let garbage = dir.path().join("garbage.pub");
        std::fs::write(&garbage, "hello\n").unwrap();
        let error = PublicKey::read(&garbage).unwrap_err().to_string();
        assert!(error.contains("cmdscope release keygen"), "{error}");
    }
}
