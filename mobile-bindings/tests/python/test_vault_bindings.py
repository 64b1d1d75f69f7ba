"""The vault through its Python bindings, end to end: the real library, a Python-implemented
platform key wrapper (the foreign trait), async calls, chunked media, and every error case
mapped to its exception. Run by scripts/test.sh after scripts/gen-bindings.sh."""

import asyncio
import hashlib
import hmac
import os
import secrets

import pytest

import vault_mobile as vm


class SoftKeystore(vm.PlatformKeyWrapper):
    """A stand-in for a platform keystore: HMAC-SHA256 keystream and tag under a key held here."""

    def __init__(self, label="python-test-keystore"):
        self._key = secrets.token_bytes(32)
        self._label = label
        self.calls = 0

    def _stream(self, nonce, length):
        out = b""
        counter = 0
        while len(out) < length:
            out += hmac.new(self._key, nonce + counter.to_bytes(4, "big"), hashlib.sha256).digest()
            counter += 1
        return out[:length]

    def wrap(self, plaintext):
        self.calls += 1
        nonce = secrets.token_bytes(16)
        body = bytes(a ^ b for a, b in zip(plaintext, self._stream(nonce, len(plaintext))))
        tag = hmac.new(self._key, b"tag" + nonce + body, hashlib.sha256).digest()
        return nonce + body + tag

    def unwrap(self, wrapped):
        self.calls += 1
        nonce, body, tag = wrapped[:16], wrapped[16:-32], wrapped[-32:]
        expected = hmac.new(self._key, b"tag" + nonce + body, hashlib.sha256).digest()
        if not hmac.compare_digest(tag, expected):
            raise vm.KeyWrapperError.Rejected()
        return bytes(a ^ b for a, b in zip(body, self._stream(nonce, len(body))))

    def label(self):
        return self._label

    def hardware_backed(self):
        return True


class FailingKeystore(SoftKeystore):
    """Wraps like SoftKeystore, then fails every unwrap with the given error."""

    def __init__(self, base, error):
        super().__init__(base.label())
        self._key = base._key
        self._error = error

    def unwrap(self, wrapped):
        raise self._error


@pytest.fixture
def vault_dir(tmp_path):
    return str(tmp_path / "vault")


def test_messages_search_secrets_and_status_with_a_python_keystore(vault_dir):
    keystore = SoftKeystore()
    vault = vm.Vault.create(vault_dir, "correct horse", keystore)
    assert keystore.calls == 1, "the slot key was wrapped by the Python keystore"
    first = vault.add_message("family", "alice", "dinner at eight, crème brûlée")
    vault.add_message("family", "bob", "on my way")
    vault.put_secret("token", b"\x00\x01secret")
    vault.lock()
    with pytest.raises(vm.VaultError.InvalidInput):
        vault.messages("family", 10)

    vault = vm.Vault.unlock_with_wrapper(vault_dir, keystore)
    messages = vault.messages("family", 10)
    assert [m.body for m in messages] == ["dinner at eight, crème brûlée", "on my way"]
    assert messages[0].id == first and messages[0].status == "received"
    hits = vault.search("creme brulee", 5)
    assert len(hits) == 1 and hits[0].message.sender == "alice"
    assert vault.secret("token") == b"\x00\x01secret"
    assert vault.secret("absent") is None
    # Paging back with `before` (keyword or positional; without it, the newest page).
    added = [first] + [vault.add_message("paged", "carol", f"page {i}") for i in range(5)]
    pages = []
    page = vault.messages("paged", 2)
    while page:
        pages.insert(0, [m.body for m in page])
        page = vault.messages("paged", 2, before=page[0].id)
    assert pages == [["page 0"], ["page 1", "page 2"], ["page 3", "page 4"]]
    assert [m.id for m in vault.messages("paged", 10, None)] == added[1:]
    assert [m.body for m in vault.messages("paged", 10, added[3])] == ["page 0", "page 1"]
    status = vault.status()
    assert status.messages == 7 and status.cipher_version.startswith("4.")
    assert [(s.kind, s.hardware_backed) for s in status.slots] == [("passphrase", False), ("key_wrapper", True)]
    assert status.slots[1].label == "python-test-keystore"
    assert any(e.kind == "unlock_succeeded" for e in status.recent_events)
    checks = asyncio.run(vault.verify())
    assert all(not c.problems for c in checks), checks


def test_media_by_path_and_by_chunks_with_ranges(vault_dir, tmp_path):
    vault = vm.Vault.create(vault_dir, "pw")
    message = vault.add_message("c", "s", "see attachment")
    data = os.urandom(300_000)
    source = tmp_path / "photo.bin"
    source.write_bytes(data)
    by_path = asyncio.run(vault.import_media_file(str(source), conversation="c", message=message))
    reader = vault.open_media(by_path)
    assert reader.length() == len(data)
    assert reader.read(65_530, 20) == data[65_530:65_550]
    assert reader.read(len(data) - 5, 100) == data[-5:]
    out = tmp_path / "out.bin"
    assert asyncio.run(vault.export_media(by_path, str(out))) == len(data)
    assert out.read_bytes() == data

    importer = vault.begin_media_import()
    for start in range(0, len(data), 7_000):
        importer.write(data[start:start + 7_000])
    by_chunks = importer.finish()
    assert vault.open_media(by_chunks).read(0, 1 << 20) == data[: 1 << 20]
    with pytest.raises(vm.VaultError.InvalidInput):
        importer.write(b"late")

    cancelled = vault.begin_media_import()
    cancelled.write(b"partial")
    cancelled.cancel()
    assert vault.status().media_items == 2, "a cancelled import stores nothing"

    assert vault.delete_media(by_path) is True
    with pytest.raises(vm.VaultError.NotFound):
        vault.open_media(by_path)
    with pytest.raises(vm.VaultError.InvalidInput):
        vault.open_media("not-hex")


def test_deleting_one_message_removes_it_its_search_entry_and_its_media(vault_dir, tmp_path):
    vault = vm.Vault.create(vault_dir, "pw")
    keep = vault.add_message("c", "alice", "keep this one")
    doomed = vault.add_message("c", "bob", "qqzjpycanary meet at the mill")
    source = tmp_path / "photo.bin"
    source.write_bytes(os.urandom(10_000))
    photo = asyncio.run(vault.import_media_file(str(source), conversation="c", message=doomed))
    assert len(vault.search("qqzjpycanary", 5)) == 1
    assert vault.delete_message(doomed) is True
    assert [m.id for m in vault.messages("c", 10)] == [keep]
    assert vault.search("qqzjpycanary", 5) == []
    with pytest.raises(vm.VaultError.NotFound):
        vault.open_media(photo)
    assert os.path.getsize(os.path.join(vault_dir, "vault.db-wal")) == 0, "the WAL was checkpointed"
    # An id that names no message (any more): False, and nothing changes.
    assert vault.delete_message(doomed) is False
    assert vault.delete_message(keep + 1000) is False
    assert vault.status().messages == 1
    vault.lock()
    with pytest.raises(vm.VaultError.InvalidInput):
        vault.delete_message(keep)
    vault = vm.Vault.unlock_with_passphrase(vault_dir, "pw")
    assert [m.body for m in vault.messages("c", 10)] == ["keep this one"]


def test_tampered_media_raises_corrupt_or_tampered(vault_dir, tmp_path):
    vault = vm.Vault.create(vault_dir, "pw")
    source = tmp_path / "a.bin"
    source.write_bytes(os.urandom(200_000))
    media_id = asyncio.run(vault.import_media_file(str(source)))
    path = os.path.join(vault_dir, "media", media_id)
    raw = bytearray(open(path, "rb").read())
    raw[100_000] ^= 1
    open(path, "wb").write(bytes(raw))
    with pytest.raises(vm.VaultError.CorruptOrTampered):
        vault.open_media(media_id).read(99_000, 5_000)
    with pytest.raises(vm.VaultError.CorruptOrTampered):
        asyncio.run(vault.export_media(media_id, str(tmp_path / "x")))
    assert not (tmp_path / "x").exists()


def test_key_rotation_through_the_bindings(vault_dir):
    old = SoftKeystore()
    vault = vm.Vault.create(vault_dir, "pw", old)
    vault.add_message("c", "s", "kept")
    with pytest.raises(vm.VaultError.InvalidInput):
        asyncio.run(vault.rotate_root_key([], []))  # slot 1 needs its keystore
    asyncio.run(vault.rotate_root_key([], [old]))
    new = SoftKeystore()
    assert vault.rotate_wrapper_key(old, new) == [1]
    vault.lock()
    with pytest.raises(vm.VaultError.WrongPassword):
        vm.Vault.unlock_with_wrapper(vault_dir, old)
    vault = vm.Vault.unlock_with_wrapper(vault_dir, new)
    assert [m.body for m in vault.messages("c", 5)] == ["kept"]
    kinds = [e.kind for e in vault.status().recent_events]
    assert "root_key_rotated" in kinds and "wrapper_key_rotated" in kinds


def test_every_error_case_maps_to_its_exception(vault_dir, tmp_path):
    keystore = SoftKeystore()
    vm.Vault.create(vault_dir, "right", keystore).lock()
    with pytest.raises(vm.VaultError.WrongPassword):
        vm.Vault.unlock_with_passphrase(vault_dir, "wrong")
    with pytest.raises(vm.VaultError.NotFound):
        vm.Vault.unlock_with_passphrase(str(tmp_path / "nothing"), "right")
    with pytest.raises(vm.VaultError.Cancelled):
        vm.Vault.unlock_with_wrapper(vault_dir, FailingKeystore(keystore, vm.KeyWrapperError.Cancelled()))
    with pytest.raises(vm.VaultError.KeyInvalidated):
        vm.Vault.unlock_with_wrapper(vault_dir, FailingKeystore(keystore, vm.KeyWrapperError.KeyInvalidated()))
    with pytest.raises(vm.VaultError.RetryLater):
        vm.Vault.unlock_with_wrapper(vault_dir, FailingKeystore(keystore, vm.KeyWrapperError.Unavailable()))
    # A keystore that raises something unexpected surfaces as Other, not a crash.
    with pytest.raises(vm.VaultError.Other):
        vm.Vault.unlock_with_wrapper(vault_dir, FailingKeystore(keystore, RuntimeError("boom")))
    vault = vm.Vault.unlock_with_passphrase(vault_dir, "right")
    with pytest.raises(vm.VaultError.InvalidInput):
        vault.search("   ", 5)
    vault.remove_slot(1)
    with pytest.raises(vm.VaultError.InvalidInput):
        vault.remove_slot(0)  # the last slot
    # A newer key-slot file version.
    vault.lock()
    slots = os.path.join(vault_dir, "keyslots")
    raw = bytearray(open(slots, "rb").read())
    raw[8] = 9
    open(slots, "wb").write(bytes(raw))
    with pytest.raises(vm.VaultError.UnsupportedVersion):
        vm.Vault.unlock_with_passphrase(vault_dir, "right")
    # Damaged database pages.
    raw[8] = 1
    open(slots, "wb").write(bytes(raw))
    db = os.path.join(vault_dir, "vault.db")
    pages = bytearray(open(db, "rb").read())
    pages[200] ^= 1
    open(db, "wb").write(bytes(pages))
    with pytest.raises(vm.VaultError.CorruptOrTampered):
        vm.Vault.unlock_with_passphrase(vault_dir, "right")


class Recorder(vm.ProgressListener):
    def __init__(self, cancel_at=None, token=None):
        self.seen = []
        self._cancel_at = cancel_at
        self._token = token

    def on_progress(self, done, total):
        self.seen.append((done, total))
        if self._cancel_at is not None and done >= self._cancel_at:
            self._token.cancel()


def test_progress_callbacks_and_cancellation(vault_dir, tmp_path):
    vault = vm.Vault.create(vault_dir, "pw")
    data = os.urandom(4_000_000)
    source = tmp_path / "video.bin"
    source.write_bytes(data)
    listener = Recorder()
    media_id = asyncio.run(vault.import_media_file(str(source), listener=listener))
    assert listener.seen[-1] == (len(data), len(data))
    assert len(listener.seen) >= 3

    token = vm.CancelToken()
    stopper = Recorder(cancel_at=1_000_000, token=token)
    with pytest.raises(vm.VaultError.Cancelled):
        asyncio.run(vault.import_media_file(str(source), listener=stopper, cancel=token))
    assert token.is_cancelled()
    assert vault.status().media_items == 1

    out = tmp_path / "out.bin"
    token = vm.CancelToken()
    token.cancel()
    with pytest.raises(vm.VaultError.Cancelled):
        asyncio.run(vault.export_media(media_id, str(out), cancel=token))
    assert not out.exists()
    assert asyncio.run(vault.export_media(media_id, str(out), listener=Recorder())) == len(data)
    assert out.read_bytes() == data


class ThrowingListener(vm.ProgressListener):
    def on_progress(self, done, total):
        raise RuntimeError("app bug")


def test_a_throwing_callback_fails_the_call_instead_of_hanging(vault_dir, tmp_path):
    vault = vm.Vault.create(vault_dir, "pw")
    source = tmp_path / "a.bin"
    source.write_bytes(os.urandom(100_000))
    with pytest.raises((vm.VaultError.Other, vm.InternalError)):
        asyncio.run(asyncio.wait_for(vault.import_media_file(str(source), listener=ThrowingListener()), 30))


def test_a_dropped_chunked_import_stores_nothing_and_rewrap_after_invalidation(vault_dir):
    old = SoftKeystore()
    vault = vm.Vault.create(vault_dir, "pw", old)
    importer = vault.begin_media_import()
    importer.write(b"half of a photo")
    del importer
    import gc
    gc.collect()
    # The import thread has the vault until it ends; the next call waits for it.
    assert vault.status().media_items == 0
    new = SoftKeystore()
    vault.rewrap_slot(1, new)
    vault.lock()
    with pytest.raises(vm.VaultError.WrongPassword):
        vm.Vault.unlock_with_wrapper(vault_dir, old)
    assert vm.Vault.unlock_with_wrapper(vault_dir, new).status().unlocked_by == 1
