//! Private keys at rest: AES-256-GCM (ring), a random 96-bit nonce per sealing, the domain name
//! as associated data (a sealed key moved to another domain's row does not open). The 32-byte
//! key comes from the configuration or, for SQLite only, from a key file beside the database.
//!
//! Sealed format: `1` (format version) || nonce (12 bytes) || ciphertext || tag (16 bytes).

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::Error;

const FORMAT_V1: u8 = 1;
/// What the key-check value seals: opening it proves the configured key is the store's key.
const KEY_CHECK_PLAINTEXT: &[u8] = b"mtasts-store key check v1";
/// Associated data of the key check; no domain name contains a space, so it cannot collide.
const KEY_CHECK_AAD: &[u8] = b"key check";

/// The 32-byte key that seals private keys. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct StoreKey([u8; 32]);

impl StoreKey {
    /// Parses 64 hexadecimal digits (surrounding white space is ignored), the form of the key
    /// file and of the `store key` configuration option.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] when it is not exactly 32 bytes of hex.
    pub fn from_hex(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        let invalid = || Error::InvalidKey {
            why: "a store key is 64 hexadecimal digits (32 bytes)",
        };
        if text.len() != 64 {
            return Err(invalid());
        }
        let mut key = [0u8; 32];
        for (i, pair) in text.as_bytes().chunks_exact(2).enumerate() {
            let hi = hex_value(pair[0]).ok_or_else(invalid)?;
            let lo = hex_value(pair[1]).ok_or_else(invalid)?;
            key[i] = hi << 4 | lo;
        }
        Ok(Self(key))
    }

    /// Uses these 32 bytes as the key.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A new random key from the operating system's generator.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if the system generator fails.
    pub fn generate() -> Result<Self, Error> {
        let mut key = [0u8; 32];
        SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| Error::InvalidKey {
                why: "the system random generator failed",
            })?;
        Ok(Self(key))
    }

    /// The key as 64 lowercase hexadecimal digits.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreKey(..)")
    }
}

/// Lowercase hexadecimal of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Seals and opens private keys with the store key.
pub(crate) struct Sealer {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    pub(crate) fn new(key: &StoreKey) -> Self {
        let unbound = UnboundKey::new(&AES_256_GCM, &key.0).expect("AES-256 takes a 32-byte key");
        Self {
            key: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
        }
    }

    /// Seals `plaintext` bound to `aad`.
    pub(crate) fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| Error::InvalidKey {
            why: "the system random generator failed",
        })?;
        let mut in_out = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut in_out,
            )
            .map_err(|_| Error::InvalidKey {
                why: "sealing failed (input too long)",
            })?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&in_out);
        Ok(out)
    }

    /// Opens what [`Sealer::seal`] made with the same key and `aad`; `None` when the key, the
    /// associated data or a byte differs.
    pub(crate) fn open(&self, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        let (&version, rest) = sealed.split_first()?;
        if version != FORMAT_V1 || rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut in_out = ciphertext.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut in_out)
            .ok()?;
        Some(plain.to_vec())
    }

    /// A fresh key-check value for a new store.
    pub(crate) fn key_check(&self) -> Result<Vec<u8>, Error> {
        self.seal(KEY_CHECK_PLAINTEXT, KEY_CHECK_AAD)
    }

    /// Whether `sealed` is a key check made with this key.
    pub(crate) fn verifies(&self, sealed: &[u8]) -> bool {
        self.open(sealed, KEY_CHECK_AAD).as_deref() == Some(KEY_CHECK_PLAINTEXT)
    }
}

/// Reads the key file at `path`, or creates it (mode 0600, a fresh random key) when `create` and
/// it does not exist. A key file that others may read is refused.
pub(crate) fn load_or_create_key_file(path: &Path, create: bool) -> Result<StoreKey, Error> {
    let io_err = |source: io::Error| Error::KeyFile {
        path: path.to_owned(),
        source,
    };
    match fs::read_to_string(path) {
        Ok(text) => {
            let mode = fs::metadata(path).map_err(io_err)?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(Error::KeyFilePermissions {
                    path: path.to_owned(),
                    mode: mode & 0o777,
                });
            }
            StoreKey::from_hex(&text).map_err(|_| Error::KeyFile {
                path: path.to_owned(),
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a key file holds 64 hexadecimal digits",
                ),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound && create => create_key_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::KeyFileMissing {
            path: path.to_owned(),
        }),
        Err(e) => Err(io_err(e)),
    }
}

/// Writes a new key to a private temporary file, then links it into place: the link fails when
/// another process created the key file first (its key is then used), and no reader ever sees a
/// half-written key.
fn create_key_file(path: &Path) -> Result<StoreKey, Error> {
    let io_err = |source: io::Error| Error::KeyFile {
        path: path.to_owned(),
        source,
    };
    let key = StoreKey::generate()?;
    let temp = temp_beside(path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .map_err(io_err)?;
    let written = (|| {
        file.write_all(format!("{}\n", key.to_hex()).as_bytes())?;
        file.sync_all()?;
        fs::hard_link(&temp, path)
    })();
    let _ = fs::remove_file(&temp);
    match written {
        Ok(()) => {
            tracing::info!(path = %path.display(), "created the store key file");
            Ok(key)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => load_or_create_key_file(path, false),
        Err(e) => Err(io_err(e)),
    }
}

/// A temporary name no other process or task uses: each writer must link only its own file.
fn temp_beside(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut name = path.as_os_str().to_owned();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    name.push(format!(".tmp-{}-{n}", std::process::id()));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::new(&StoreKey::from_bytes([7; 32]))
    }

    #[test]
    fn sealed_keys_open_only_with_the_same_key_and_domain() {
        let s = sealer();
        let sealed = s.seal(b"secret", b"example.com").unwrap();
        assert_eq!(s.open(&sealed, b"example.com").unwrap(), b"secret");
        assert_eq!(s.open(&sealed, b"example.net"), None, "other domain");
        let other = Sealer::new(&StoreKey::from_bytes([8; 32]));
        assert_eq!(other.open(&sealed, b"example.com"), None, "other key");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert_eq!(s.open(&bad, b"example.com"), None, "flipped byte {i}");
        }
        for n in 0..sealed.len() {
            assert_eq!(
                s.open(&sealed[..n], b"example.com"),
                None,
                "truncated to {n}"
            );
        }
    }

    #[test]
    fn each_sealing_uses_a_fresh_nonce() {
        let s = sealer();
        let a = s.seal(b"secret", b"d").unwrap();
        let b = s.seal(b"secret", b"d").unwrap();
        assert_ne!(a[1..13], b[1..13]);
    }

    #[test]
    fn store_keys_parse_from_64_hex_digits_only() {
        let k = StoreKey::generate().unwrap();
        assert_eq!(StoreKey::from_hex(&k.to_hex()).unwrap().0, k.0);
        assert_eq!(
            StoreKey::from_hex(&format!("  {}\n", k.to_hex().to_uppercase()))
                .unwrap()
                .0,
            k.0
        );
        for bad in ["", "00", &"0".repeat(63), &"0".repeat(65), &"g".repeat(64)] {
            assert!(StoreKey::from_hex(bad).is_err(), "{bad:?}");
        }
        assert_eq!(format!("{k:?}"), "StoreKey(..)");
    }

    #[test]
    fn key_check_tells_the_right_key_from_a_wrong_one() {
        let check = sealer().key_check().unwrap();
        assert!(sealer().verifies(&check));
        assert!(!Sealer::new(&StoreKey::from_bytes([9; 32])).verifies(&check));
    }

    #[test]
    fn key_file_is_created_private_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db.key");
        assert!(matches!(
            load_or_create_key_file(&path, false),
            Err(Error::KeyFileMissing { .. })
        ));
        let k1 = load_or_create_key_file(&path, true).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let k2 = load_or_create_key_file(&path, true).unwrap();
        assert_eq!(k1.0, k2.0);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_or_create_key_file(&path, true),
            Err(Error::KeyFilePermissions { mode: 0o644, .. })
        ));
    }
}
