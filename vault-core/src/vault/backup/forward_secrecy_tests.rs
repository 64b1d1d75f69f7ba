//! Forward secrecy against a provider that keeps every object it was ever given
//! (`docs/adr/0017-forward-secret-backups.md`, adversary table): the adversary holds the current
//! Backup Root Key (what the recovery code, the password and the guardians' current records
//! yield), the current head record, and a copy of every object ever uploaded, and decrypts every
//! manifest, tree and chunk it can with all of that.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::Mutex;

use crate::backup::format::{Head, Location, Manifest, Tree, open_index, pack_name};
use crate::backup::keys::{BackupKeys, ChunkId, ChunkKey, GenerationToken};
use crate::backup::run::{load_keys, open_in_pack};
use crate::backup::{DirTransport, Transport, TransportError};
use crate::vault::{CreateOptions, Vault};
use crate::{KdfParams, MediaImport, NewMessage, Passphrase};

const DELETED: &str = "DELETED-CANARY-4f1a: meet me at the old pier";
const LIVE: &str = "LIVE-CANARY-9b3c: still here";

/// A storage that forwards to a backup directory and keeps a copy of every object it was ever
/// given, whatever is deleted later: the provider of the adversary table.
struct Hoard {
    inner: DirTransport,
    kept: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl Hoard {
    fn objects(&self) -> BTreeMap<String, Vec<u8>> {
        self.kept.lock().unwrap().clone()
    }
}

impl Transport for Hoard {
    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), TransportError> {
        self.kept.lock().unwrap().insert(name.to_owned(), bytes.to_vec());
        self.inner.put(name, bytes)
    }
    fn put_reader(&self, name: &str, len: u64, mut reader: Box<dyn Read + Send>) -> Result<(), TransportError> {
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).map_err(|e| TransportError::Failed(e.to_string()))?;
        self.kept.lock().unwrap().insert(name.to_owned(), bytes.clone());
        self.inner.put_reader(name, len, Box::new(std::io::Cursor::new(bytes)))
    }
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, TransportError> {
        self.inner.get(name)
    }
    fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, TransportError> {
        self.inner.get_range(name, offset, len)
    }
    fn list(&self) -> Result<Vec<(String, u64)>, TransportError> {
        self.inner.list()
    }
    fn delete(&self, name: &str) -> Result<(), TransportError> {
        self.inner.delete(name)
    }
    fn get_head(&self) -> Result<Option<(Vec<u8>, String)>, TransportError> {
        self.inner.get_head()
    }
    fn put_head(&self, bytes: &[u8], generation: u64, expected: Option<&str>) -> Result<(), TransportError> {
        self.inner.put_head(bytes, generation, expected)
    }
}

/// Everything the adversary decrypts: every snapshot's export it can rebuild, and every chunk it
/// can open on its own (a chunk sealed under the epoch's key needs no tree).
struct Loot {
    exports: Vec<Vec<u8>>,
    loose_chunks: Vec<Vec<u8>>,
}

impl Loot {
    fn contains(&self, needle: &[u8]) -> bool {
        let found = |hay: &Vec<u8>| hay.windows(needle.len()).any(|w| w == needle);
        self.exports.iter().any(found) || self.loose_chunks.iter().any(found)
    }
}

/// Decrypts all it can from `objects` with the backup key's `keys` and the generation tokens
/// `tokens` (the current head's, and any a holder kept against the protocol).
fn plunder(keys: &BackupKeys, tokens: &[GenerationToken], objects: &BTreeMap<String, Vec<u8>>) -> Loot {
    let epochs = 0..=keys.current_epoch();
    // Every chunk location any index object ever named.
    let mut locations: HashMap<ChunkId, Vec<Location>> = HashMap::new();
    for (name, bytes) in objects.iter().filter(|(n, _)| n.starts_with("index-")) {
        for epoch in epochs.clone() {
            for location in open_index(keys, epoch, name, bytes).unwrap_or_default() {
                locations.entry(location.entry.id).or_default().push(location);
            }
        }
    }
    let open = |id: &ChunkId, key: Option<&ChunkKey>| -> Option<Vec<u8>> {
        locations.get(id)?.iter().find_map(|location| {
            let pack = objects.get(&pack_name(&location.pack))?;
            open_in_pack(keys, pack, location, key).ok().map(|p| p.expose_secret().to_vec())
        })
    };
    let mut loot = Loot { exports: Vec::new(), loose_chunks: Vec::new() };
    // Every chunk that opens without a tree's key.
    for id in locations.keys() {
        if let Some(plain) = open(id, None) {
            loot.loose_chunks.push(plain);
        }
    }
    // Every manifest that opens under any epoch, with or without any token it has; every tree
    // those name; every export chunk those name.
    for (name, bytes) in objects.iter().filter(|(n, _)| n.starts_with("manifest-")) {
        let generation = u64::from_str_radix(name.trim_start_matches("manifest-"), 16).unwrap();
        let candidates = tokens.iter().map(Some).chain(std::iter::once(None));
        for (epoch, token) in epochs.clone().flat_map(|e| candidates.clone().map(move |t| (e, t))) {
            let Ok(manifest) = Manifest::open(keys, epoch, generation, bytes, token) else { continue };
            for snapshot in &manifest.snapshots {
                let tree: Option<Vec<u8>> = snapshot
                    .tree_chunks
                    .iter()
                    .map(|c| open(&c.id, c.key.as_ref()))
                    .collect::<Option<Vec<_>>>()
                    .map(|v| v.concat());
                let Some(tree) = tree.and_then(|t| Tree::decode(&t).ok()) else { continue };
                let export = tree.export_chunks.iter().map(|c| open(&c.id, c.key.as_ref()).unwrap_or_default());
                loot.exports.push(export.collect::<Vec<_>>().concat());
            }
        }
    }
    loot
}

/// Argon2id at its floor: these tests measure keys, not unlock cost.
fn kdf() -> KdfParams {
    KdfParams { memory_kib: KdfParams::MIN_MEMORY_KIB, iterations: 1, parallelism: 1 }
}

fn vault_with_canaries(dir: &std::path::Path) -> (Vault, i64, crate::MediaId, crate::MediaId) {
    let options = CreateOptions { kdf: kdf(), wrapper: None };
    let mut vault = Vault::create(dir, &Passphrase::new("phone".into()), options).unwrap();
    let batch: Vec<NewMessage> =
        (0..400).map(|i| NewMessage::new("family", "ann", format!("ordinary message {i}"))).collect();
    vault.messages().add_batch(&batch).unwrap();
    let deleted = vault.messages().add(&NewMessage::new("family", "bo", DELETED)).unwrap();
    vault.messages().add(&NewMessage::new("family", "bo", LIVE)).unwrap();
    let place = MediaImport { conversation: Some("family"), message: None };
    let doomed = vault.media().import(&mut &[0xd0; 200_000][..], place).unwrap();
    let kept = vault.media().import(&mut &[0x4b; 150_000][..], place).unwrap();
    (vault, deleted.0, doomed, kept)
}

fn media_key(vault: &mut Vault, id: &crate::MediaId) -> [u8; 32] {
    let backups = vault.backups().unwrap();
    *crate::store::media_rows::row(&backups.state, id).unwrap().key.expose_secret()
}

fn adversary_keys(vault: &mut Vault, storage: &dyn Transport) -> (BackupKeys, Head) {
    let brk = vault.backups().unwrap().dangerous_export_key().unwrap().unwrap();
    let (keys, _) = load_keys(storage, &brk.0).unwrap();
    let (bytes, _) = storage.get_head().unwrap().unwrap();
    let head = Head::open(&keys, &bytes).unwrap();
    (keys, head)
}

#[test]
fn a_deleted_message_and_media_item_are_gone_from_the_backups_for_a_hoarding_adversary() {
    let work = tempfile::tempdir().unwrap();
    let (mut vault, deleted, doomed, kept) = vault_with_canaries(&work.path().join("phone"));
    let storage = Hoard { inner: DirTransport::new(&work.path().join("backup")).unwrap(), kept: Mutex::default() };
    vault.backups().unwrap().run(&storage, None).unwrap();
    let (doomed_key, kept_key) = (media_key(&mut vault, &doomed), media_key(&mut vault, &kept));

    // Before the deletion the adversary reads everything: the test's adversary is not blind.
    let (keys, head) = adversary_keys(&mut vault, &storage);
    let before = plunder(&keys, &[keys.token_for(&head).unwrap()], &storage.objects());
    assert!(before.contains(DELETED.as_bytes()) && before.contains(&doomed_key));

    // Delete, back up; then delete nothing and back up again, and prune (deletes nothing the
    // provider does not keep anyway).
    assert!(vault.messages().delete(crate::MessageId(deleted)).unwrap());
    vault.media().delete(&doomed).unwrap();
    vault.backups().unwrap().run(&storage, None).unwrap();
    vault.messages().add(&NewMessage::new("family", "ann", "after the deletion")).unwrap();
    vault.backups().unwrap().run(&storage, None).unwrap();

    let (keys, head) = adversary_keys(&mut vault, &storage);
    let objects = storage.objects();
    assert!(objects.keys().filter(|n| n.starts_with("manifest-")).count() == 3);
    let loot = plunder(&keys, &[keys.token_for(&head).unwrap()], &objects);
    assert!(!loot.contains(DELETED.as_bytes()), "the deleted message decrypts from a kept object");
    assert!(!loot.contains(&doomed_key), "the deleted media item's key decrypts from a kept object");
    assert!(loot.loose_chunks.is_empty(), "no chunk opens without a tree's key");
    // What is live is the adversary's (it holds the current key): the check above is not vacuous.
    assert!(loot.contains(LIVE.as_bytes()) && loot.contains(&kept_key));
    assert_eq!(loot.exports.len(), 1, "only the newest generation's manifest opens");

    // Everything live restores from the storage.
    let key = vault.backups().unwrap().dangerous_export_key().unwrap().unwrap();
    let target = work.path().join("new-phone");
    let options = crate::RestoreOptions { create: CreateOptions { kdf: kdf(), wrapper: None }, ..Default::default() };
    crate::restore_backup(&storage, &key, &target, &Passphrase::new("new".into()), options).unwrap();
    let mut restored = Vault::unlock(&target, crate::SlotSecret::Passphrase(&Passphrase::new("new".into()))).unwrap();
    assert_eq!(restored.messages().search(LIVE, 5).unwrap().len(), 1);
    assert!(restored.messages().search("pier", 5).unwrap().is_empty());
    assert_eq!(restored.media().list().unwrap().len(), 1);
}

/// The documented limit: a holder that kept the head record it was told to overwrite still holds
/// the old generation's token, and with it the deleted data.
#[test]
fn a_holder_that_kept_an_old_head_record_still_decrypts_deleted_data() {
    let work = tempfile::tempdir().unwrap();
    let (mut vault, deleted, doomed, _) = vault_with_canaries(&work.path().join("phone"));
    let storage = Hoard { inner: DirTransport::new(&work.path().join("backup")).unwrap(), kept: Mutex::default() };
    vault.backups().unwrap().run(&storage, None).unwrap();
    let doomed_key = media_key(&mut vault, &doomed);
    let (keys, old_head) = adversary_keys(&mut vault, &storage);
    assert!(vault.messages().delete(crate::MessageId(deleted)).unwrap());
    vault.media().delete(&doomed).unwrap();
    vault.backups().unwrap().run(&storage, None).unwrap();
    let (_, head) = adversary_keys(&mut vault, &storage);
    let tokens = [keys.token_for(&head).unwrap(), keys.token_for(&old_head).unwrap()];
    let loot = plunder(&keys, &tokens, &storage.objects());
    assert!(loot.contains(DELETED.as_bytes()) && loot.contains(&doomed_key));
    assert_eq!(loot.exports.len(), 2);
}

// ---- the token split across guardians -----------------------------------------------------------

mod guardians {
    use std::collections::BTreeMap;

    use super::{DELETED, LIVE, kdf, plunder};
    use crate::GuardianRestore;
    use crate::backup::format::Head;
    use crate::backup::keys::{GenerationToken, TokenPart, token_candidates};
    use crate::backup::run::load_keys;
    use crate::recovery::testing::{Call, Fault, MemoryNetwork};
    use crate::recovery::{RecoveryPolicy, RecoverySetup};
    use crate::vault::{CreateOptions, Vault};
    use crate::{MessageId, NewMessage, Passphrase};

    const ACCOUNT: &str = "ann@example.org";

    fn password() -> Passphrase {
        Passphrase::new("backup password".into())
    }

    /// A phone with both canaries, backed up (generation 1) to three guardians under 2 of 3
    /// without a recovery code: each generation's token is split 2 of 3 across them.
    fn phone(dir: &std::path::Path, network: &MemoryNetwork, urls: &[String]) -> (Vault, MessageId) {
        let mut vault =
            Vault::create(dir, &Passphrase::new("phone".into()), CreateOptions { kdf: kdf(), wrapper: None }).unwrap();
        let batch: Vec<NewMessage> =
            (0..300).map(|i| NewMessage::new("family", "ann", format!("ordinary message {i}"))).collect();
        vault.messages().add_batch(&batch).unwrap();
        let deleted = vault.messages().add(&NewMessage::new("family", "bo", DELETED)).unwrap();
        vault.messages().add(&NewMessage::new("family", "bo", LIVE)).unwrap();
        let policy = RecoveryPolicy::new(3, Some(2), false, false).unwrap();
        assert_eq!(policy.token_policy().threshold, 2);
        let setup = RecoverySetup { servers: urls, account: ACCOUNT, policy, device_name: "phone" };
        let mut recovery = vault.recovery().unwrap();
        recovery.setup(network, &setup, &password()).unwrap();
        let report = recovery.backup(network, None).unwrap();
        assert!(report.head_copies_failed.is_empty(), "{:?}", report.head_copies_failed);
        (vault, deleted)
    }

    /// Every object any guardian ever stored for the account (none was deleted in these tests).
    fn hoard(network: &MemoryNetwork, urls: &[String]) -> BTreeMap<String, Vec<u8>> {
        urls.iter().flat_map(|u| network.guardian(u).objects_of(ACCOUNT)).collect()
    }

    fn heads(network: &MemoryNetwork, url: &str, keys: &crate::backup::BackupKeys) -> Vec<Head> {
        network.guardian(url).head_history_of(ACCOUNT).iter().map(|b| Head::open(keys, b).unwrap()).collect()
    }

    #[test]
    fn old_token_shares_from_fewer_than_the_threshold_of_guardians_decrypt_nothing_deleted() {
        let work = tempfile::tempdir().unwrap();
        let (network, urls) = MemoryNetwork::with_guardians(3);
        let (mut vault, deleted) = phone(&work.path().join("phone"), &network, &urls);
        assert!(vault.messages().delete(deleted).unwrap());
        vault.recovery().unwrap().backup(&network, None).unwrap();

        let brk = vault.backups().unwrap().dangerous_export_key().unwrap().unwrap();
        let data = crate::recovery::lifecycle::data_transport(
            &network,
            &crate::recovery::Enrolment::require(vault.backups().unwrap().state()).unwrap(),
        )
        .unwrap();
        let (keys, _) = load_keys(&*data, &brk.0).unwrap();
        // Each guardian's head records, oldest first: generation 1 then 2.
        let history: Vec<Vec<Head>> = urls.iter().map(|u| heads(&network, u, &keys)).collect();
        let part = |guardian: usize, generation: u64| -> TokenPart {
            let head = history[guardian].iter().rev().find(|h| h.generation == generation).unwrap();
            assert!(matches!(head.token, Some(TokenPart::Share(_))), "a guardian holds a share, not the token");
            head.token.clone().unwrap()
        };
        let objects = hoard(&network, &urls);
        let tokens = |parts: Vec<TokenPart>| -> Vec<GenerationToken> { token_candidates(&parts) };

        // The current records of every guardian: the newest generation only.
        let current = tokens((0..3).map(|g| part(g, 2)).collect());
        let loot = plunder(&keys, &current, &objects);
        assert!(loot.contains(LIVE.as_bytes()), "the adversary reads what is live");
        assert!(!loot.contains(DELETED.as_bytes()));
        // Plus one guardian's old share: still nothing deleted.
        for kept in 0..3 {
            let mut parts: Vec<TokenPart> = (0..3).map(|g| part(g, 2)).collect();
            parts.push(part(kept, 1));
            let loot = plunder(&keys, &tokens(parts), &objects);
            assert!(
                !loot.contains(DELETED.as_bytes()),
                "one old share (guardian {kept}) decrypted the deleted message"
            );
        }
        // Old shares from a threshold of guardians: the deleted message decrypts (the documented
        // limit).
        let parts = vec![part(0, 1), part(2, 1)];
        let loot = plunder(&keys, &tokens(parts), &objects);
        assert!(loot.contains(DELETED.as_bytes()));
    }

    #[test]
    fn a_run_stopped_between_the_guardians_head_writes_restores_the_new_generation_through_its_bridge() {
        let work = tempfile::tempdir().unwrap();
        let (network, urls) = MemoryNetwork::with_guardians(3);
        let (mut vault, _) = phone(&work.path().join("phone"), &network, &urls);
        vault.messages().add(&NewMessage::new("family", "ann", "written in generation 2")).unwrap();
        // The run writes generation 2 at the data guardian (and its objects at the mirror); the
        // head writes at the other two fail (the copy, and the mirror's repair after the run), as
        // if the device died between the writes.
        network.guardian(&urls[1]).script(Fault::DropNext(Call::PutHead));
        network.guardian(&urls[1]).script(Fault::DropNext(Call::PutHead));
        network.guardian(&urls[2]).script(Fault::Down);
        let report = vault.recovery().unwrap().backup(&network, None).unwrap();
        assert_eq!(report.backup.generation, 2);
        assert_eq!(report.head_copies_failed.len(), 2, "{:?}", report.head_copies_failed);
        network.guardian(&urls[2]).heal();
        let brk = vault.backups().unwrap().dangerous_export_key().unwrap().unwrap();
        let keys = crate::backup::BackupKeys::derive(&brk.0);
        let newest = |url: &str| heads(&network, url, &keys).last().map(|h| h.generation);
        assert_eq!([newest(&urls[0]), newest(&urls[1]), newest(&urls[2])], [Some(2), Some(1), Some(1)]);

        // The data guardian's share of generation 2 alone is below the threshold; the other two
        // hold generation 1's shares, and the bridge carries them to generation 2.
        let password = password();
        let request = GuardianRestore {
            servers: &urls,
            account: ACCOUNT,
            password: &password,
            code: None,
            device_name: "new",
            accept_unverified_freshness: true,
        };
        let target = work.path().join("new-phone");
        let create = CreateOptions { kdf: kdf(), wrapper: None };
        let restored =
            crate::restore_from_guardians(&network, &request, &target, &Passphrase::new("new".into()), create, None)
                .unwrap();
        assert_eq!(restored.restore.generation, 2);
        let mut new = Vault::unlock(&target, crate::SlotSecret::Passphrase(&Passphrase::new("new".into()))).unwrap();
        assert_eq!(new.messages().search("generation", 5).unwrap().len(), 1);
        // The new device holds generation 2's token and backs up on top of it.
        new.messages().add(&NewMessage::new("family", "ann", "from the new phone")).unwrap();
        let next = new.recovery().unwrap().backup(&network, None).unwrap();
        assert_eq!(next.backup.generation, 3);
        assert!(next.head_copies_failed.is_empty(), "{:?}", next.head_copies_failed);
    }
}
