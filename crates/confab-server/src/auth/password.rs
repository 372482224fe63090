//! Password hashing with bounded memory and bounded concurrency.
//!
//! Argon2 needs 19 MiB of working memory per hash. Run on the blocking pool
//! with heap buffers, a burst of failed logins grew the process by that much
//! per thread and kept it: the allocator's per-thread arenas hold freed
//! blocks this size. Here a few dedicated threads (half the cores, so that
//! messages keep flowing during a burst) do all hashing, each with memory
//! mapped straight from the kernel, given back as soon as no work is
//! waiting. A burst of logins waits its turn in a bounded queue; beyond it,
//! a login is told to come back shortly instead of growing anything.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use rand::RngCore;
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;

/// Hashes that may wait for a thread; more are refused at once. Each takes
/// about 30 ms of a core, so the last of them waits a second or two.
const QUEUE: usize = 64;
/// The most memory one stored hash may ask for (a hash made elsewhere with
/// heavier settings); ours take 19 MiB.
const MAX_BLOCKS: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Every hashing thread is busy and the queue is full.
    #[error("too many password checks at once")]
    Busy,
    #[error("password hashing failed: {0}")]
    Failed(String),
}

enum Work {
    Hash(String, oneshot::Sender<Result<String, PasswordError>>),
    Verify(String, String, oneshot::Sender<bool>),
}

/// Work and its place in the queue, given back when it is done.
struct Job {
    work: Work,
    _place: tokio::sync::OwnedSemaphorePermit,
}

/// The process's password hashing threads.
pub struct Passwords {
    queue: SyncSender<Job>,
    /// Places in the queue; the channel holds as many, so it is never full.
    places: Arc<tokio::sync::Semaphore>,
    waiting: Arc<AtomicUsize>,
    /// Bytes of working memory the threads hold now.
    mapped: Arc<AtomicUsize>,
}

impl Passwords {
    /// The pool every part of the process shares: hashing threads are a
    /// property of the machine, not of a server.
    pub fn shared() -> &'static Passwords {
        static POOL: OnceLock<Passwords> = OnceLock::new();
        POOL.get_or_init(|| {
            let threads = std::thread::available_parallelism()
                .map(|n| (n.get() / 2).clamp(1, 4))
                .unwrap_or(1);
            Passwords::start(threads)
        })
    }

    fn start(threads: usize) -> Passwords {
        let (queue, jobs) = std::sync::mpsc::sync_channel(QUEUE);
        let jobs = Arc::new(Mutex::new(jobs));
        let waiting = Arc::new(AtomicUsize::new(0));
        let mapped = Arc::new(AtomicUsize::new(0));
        for i in 0..threads {
            let jobs = jobs.clone();
            let waiting = waiting.clone();
            let mapped = mapped.clone();
            // A thread that cannot start leaves the others to do the work.
            let _ = std::thread::Builder::new()
                .name(format!("confab-passwords-{i}"))
                .spawn(move || work(&jobs, &waiting, &mapped));
        }
        Passwords {
            queue,
            places: Arc::new(tokio::sync::Semaphore::new(QUEUE)),
            waiting,
            mapped,
        }
    }

    fn submit(&self, work: Work) -> Result<(), PasswordError> {
        let place = self
            .places
            .clone()
            .try_acquire_owned()
            .map_err(|_| PasswordError::Busy)?;
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let job = Job {
            work,
            _place: place,
        };
        match self.queue.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                Err(PasswordError::Busy)
            }
        }
    }

    /// Bytes of working memory the hashing threads hold now (none while no
    /// work waits).
    pub fn mapped_bytes(&self) -> usize {
        self.mapped.load(Ordering::SeqCst)
    }

    /// A PHC string (`$argon2id$v=19$...`) for `password`, with a fresh salt.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        let (tx, rx) = oneshot::channel();
        self.submit(Work::Hash(password, tx))?;
        rx.await
            .map_err(|_| PasswordError::Failed("the hashing thread stopped".into()))?
    }

    /// Whether `password` matches the stored PHC string. A string that is
    /// not one never matches.
    pub async fn verify(&self, password: String, hash: String) -> Result<bool, PasswordError> {
        let (tx, rx) = oneshot::channel();
        self.submit(Work::Verify(password, hash, tx))?;
        Ok(rx.await.unwrap_or(false))
    }
}

fn work(jobs: &Mutex<Receiver<Job>>, waiting: &AtomicUsize, mapped: &Arc<AtomicUsize>) {
    let mut memory: Option<Memory> = None;
    loop {
        // Nothing waiting: give the memory back before sleeping, also while
        // another thread holds the queue.
        if waiting.load(Ordering::SeqCst) == 0 {
            memory = None;
        }
        let job = {
            let Ok(jobs) = jobs.lock() else { return };
            if waiting.load(Ordering::SeqCst) == 0 {
                memory = None;
            }
            match jobs.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        waiting.fetch_sub(1, Ordering::SeqCst);
        match job.work {
            Work::Hash(password, reply) => {
                let _ = reply.send(hash_with(&mut memory, mapped, &password));
            }
            Work::Verify(password, hash, reply) => {
                let _ = reply.send(verify_with(&mut memory, mapped, &password, &hash));
            }
        }
    }
}

/// `memory`, grown to `blocks` if it is smaller.
fn blocks<'m>(
    memory: &'m mut Option<Memory>,
    mapped: &Arc<AtomicUsize>,
    blocks: usize,
) -> Result<&'m mut [Block], PasswordError> {
    if blocks > MAX_BLOCKS {
        return Err(PasswordError::Failed(format!(
            "a hash asking for {blocks} KiB of memory is not accepted"
        )));
    }
    if memory.as_ref().is_none_or(|m| m.blocks < blocks) {
        *memory = None;
        *memory =
            Some(Memory::map(blocks, mapped).map_err(|e| PasswordError::Failed(e.to_string()))?);
    }
    let m = memory.as_mut().expect("mapped just above");
    Ok(&mut m.as_mut_slice()[..blocks])
}

fn hash_with(
    memory: &mut Option<Memory>,
    mapped: &Arc<AtomicUsize>,
    password: &str,
) -> Result<String, PasswordError> {
    let failed = |e: &dyn std::fmt::Display| PasswordError::Failed(e.to_string());
    let params = Params::default();
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(
            password.as_bytes(),
            &salt,
            &mut out,
            blocks(memory, mapped, params.block_count())?,
        )
        .map_err(|e| failed(&e))?;
    let phc = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| failed(&e))?,
        salt: Some(Salt::new(&salt).map_err(|e| failed(&e))?),
        hash: Some(Output::new(&out).map_err(|e| failed(&e))?),
    };
    Ok(phc.to_string())
}

fn verify_with(
    memory: &mut Option<Memory>,
    mapped: &Arc<AtomicUsize>,
    password: &str,
    stored: &str,
) -> bool {
    let Ok(phc) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&phc.salt, &phc.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(phc.algorithm.as_str()) else {
        return false;
    };
    let version = match phc.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&phc) else {
        return false;
    };
    let Ok(memory) = blocks(memory, mapped, params.block_count()) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let computed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password.as_bytes(),
        salt.as_ref(),
        &mut out,
        memory,
    );
    computed.is_ok() && bool::from(out.ct_eq(expected.as_ref()))
}

/// Argon2's working memory, mapped from the kernel and unmapped on drop, so
/// that its pages go back to the system at once rather than to an
/// allocator's arena.
struct Memory {
    ptr: NonNull<Block>,
    blocks: usize,
    /// The pool's count of bytes mapped.
    mapped: Arc<AtomicUsize>,
}

// The mapping is owned by one thread at a time, like a `Vec`.
unsafe impl Send for Memory {}

impl Memory {
    fn len(blocks: usize) -> usize {
        blocks * std::mem::size_of::<Block>()
    }

    fn map(blocks: usize, mapped: &Arc<AtomicUsize>) -> std::io::Result<Memory> {
        // SAFETY: an anonymous private mapping with no address hint touches
        // no existing memory; failure is reported as MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                Self::len(blocks),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<Block>()).ok_or_else(std::io::Error::last_os_error)?;
        mapped.fetch_add(Self::len(blocks), Ordering::SeqCst);
        Ok(Memory {
            ptr,
            blocks,
            mapped: mapped.clone(),
        })
    }

    fn as_mut_slice(&mut self) -> &mut [Block] {
        // SAFETY: the mapping is page-aligned (more than a Block's 64 bytes),
        // `blocks` Blocks long, zero-filled by the kernel (a valid Block is
        // any bit pattern of u64s) and borrowed mutably through `self` only.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.blocks) }
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `map`, which no slice
        // outlives (they borrow `self`).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), Self::len(self.blocks));
        }
        self.mapped
            .fetch_sub(Self::len(self.blocks), Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordVerifier;

    #[tokio::test]
    async fn hashes_verify_here_and_with_the_reference_implementation() {
        let pool = Passwords::shared();
        let h = pool.hash("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(
            pool.verify("correct horse".into(), h.clone())
                .await
                .unwrap()
        );
        assert!(!pool.verify("wrong".into(), h.clone()).await.unwrap());
        // The crate's own verifier accepts ours, and we accept its hashes
        // (those made before this pool, still stored for existing users).
        Argon2::default()
            .verify_password(b"correct horse", h.as_str())
            .unwrap();
        use argon2::PasswordHasher;
        let theirs = Argon2::default()
            .hash_password(b"battery staple")
            .unwrap()
            .to_string();
        assert!(
            pool.verify("battery staple".into(), theirs.clone())
                .await
                .unwrap()
        );
        assert!(!pool.verify("battery".into(), theirs).await.unwrap());
        assert!(!pool.verify("x".into(), "not a hash".into()).await.unwrap());
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_not_grown() {
        // One thread, so the queue fills behind it.
        let pool = Passwords::start(1);
        let h = pool.hash("pw".into()).await.unwrap();
        let checks: Vec<_> = (0..QUEUE + 20)
            .map(|_| pool.verify("pw".into(), h.clone()))
            .collect();
        let results = futures::future::join_all(checks).await;
        let busy = results
            .iter()
            .filter(|r| matches!(r, Err(PasswordError::Busy)))
            .count();
        assert!(busy >= 19, "{busy} refused");
        assert!(results.iter().any(|r| matches!(r, Ok(true))));
    }

    #[tokio::test]
    async fn the_memory_goes_back_when_no_work_is_waiting() {
        let pool = Passwords::start(2);
        let h = pool.hash("pw".into()).await.unwrap();
        let checks: Vec<_> = (0..12)
            .map(|_| pool.verify("pw".into(), h.clone()))
            .collect();
        for ok in futures::future::join_all(checks).await {
            assert!(ok.unwrap());
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while pool.mapped_bytes() != 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "{} bytes still mapped with nothing waiting",
                pool.mapped_bytes()
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    #[test]
    fn a_hash_asking_for_too_much_memory_never_matches() {
        let mut memory = None;
        let mapped = Arc::new(AtomicUsize::new(0));
        let greedy = "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHRzYWx0$MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI";
        assert!(!verify_with(&mut memory, &mapped, "x", greedy));
        assert!(memory.is_none());
    }
}
