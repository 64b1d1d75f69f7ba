"""Backup and recovery through the Python bindings, end to end: a real backup-server process, a
vault with a Python-implemented platform key wrapper, setup with a recovery code, backups with
progress and cancellation, a restore into a new directory under a different wrapper, and the
error cases of recovery mapped to their exceptions. Run by scripts/test.sh after the workspace
build (it needs target/debug/backup-server)."""

import asyncio
import os
import shutil
import subprocess
import threading

import pytest

import vault_mobile as vm
from test_vault_bindings import Recorder, SoftKeystore

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SERVER_BIN = os.path.join(ROOT, "target", "debug", "backup-server")
PASSWORD = "a long backup password from python"
ACCOUNT = "python-user@example.org"


class BackupServer:
    """A backup-server process on a free loopback port with its data in `data`."""

    def __init__(self, data, extra=()):
        if not os.path.exists(SERVER_BIN):
            pytest.fail(f"{SERVER_BIN} is not built: run `cargo build --workspace` first")
        self.process = subprocess.Popen(
            [SERVER_BIN, "--listen", "127.0.0.1:0", "--data-dir", str(data),
             "--rate-limit-per-ip", "0", "--rate-limit-per-account", "0", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.url = None
        for line in self.process.stdout:
            if line.startswith("backup-server listening on "):
                self.url = line.split()[-1]
                break
        if not self.url:
            self.process.kill()
            pytest.fail(f"the backup server did not say where it listens: {self.process.stderr.read().strip()}")
        # Keep draining its error output as well.
        threading.Thread(target=lambda: [None for _ in self.process.stderr], daemon=True).start()
        # Keep draining its output so it never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in self.process.stdout], daemon=True).start()

    def stop(self):
        self.process.kill()
        self.process.wait()


@pytest.fixture
def server(tmp_path):
    s = BackupServer(tmp_path / "server")
    yield s
    s.stop()


def filled_vault(path, keystore, tmp_path):
    vault = vm.Vault.create(str(path), "phone passphrase", keystore)
    for i in range(200):
        vault.add_message("family", "ann", f"message {i}: PYTHON-CANARY")
    photo = tmp_path / "photo.bin"
    photo.write_bytes(os.urandom(2_500_000))
    asyncio.run(vault.import_media_file(str(photo), conversation="family"))
    return vault


def test_backup_and_restore_on_a_new_device_with_another_keystore(server, tmp_path):
    phone_keys = SoftKeystore("phone-keystore")
    vault = filled_vault(tmp_path / "phone", phone_keys, tmp_path)
    backup = vm.Backup(vault)
    setup = asyncio.run(backup.setup([server.url], ACCOUNT, PASSWORD, "python phone"))
    assert setup.policy == "2 of {1 server, recovery code}"
    assert setup.threshold == 2 and setup.shares == 2 and not setup.single_provider
    code = setup.recovery_code
    assert code and len(code) == 71
    info = backup.recovery_info()
    assert info.account == ACCOUNT and info.servers == [server.url]
    assert info.safety_number == setup.safety_number

    listener = Recorder()
    first = asyncio.run(backup.run(listener))
    assert first.generation == 1 and first.media_uploaded == 1
    assert listener.seen and listener.seen[-1][0] >= 2_500_000
    vault.add_message("family", "bob", "after the first backup")
    second = asyncio.run(backup.run())
    assert second.generation == 2 and second.media_reused == 1 and second.media_uploaded == 0
    # A manifest holds the newest snapshot only (forward secrecy, ADR 0017).
    assert [s.generation for s in asyncio.run(backup.snapshots())] == [2]
    assert asyncio.run(backup.verify(1.0)) == []
    devices = asyncio.run(backup.devices())
    assert [(d.name, d.this_device) for d in devices] == [("python phone", True)]

    # A cancelled backup publishes nothing; the next run completes.
    vault.add_message("family", "bob", "third")
    token = vm.CancelToken()
    token.cancel()
    with pytest.raises(vm.VaultError.Cancelled):
        asyncio.run(backup.run(cancel=token))
    assert [s.generation for s in asyncio.run(backup.snapshots())] == [2]
    assert asyncio.run(backup.run()).generation == 3

    # The phone is lost: a new device, another keystore, the password and the recovery code.
    tablet_keys = SoftKeystore("tablet-keystore")
    recovery = vm.Recovery([server.url], ACCOUNT)
    checked = asyncio.run(recovery.check_key(PASSWORD, code))
    assert checked.recovery_code_used and checked.newest_generation == 3
    target = tmp_path / "tablet"
    progress = Recorder()
    # One server is both the data server and the only guardian: nothing else can attest that its
    # backup is the newest, so the restore is refused unless that is accepted explicitly.
    with pytest.raises(vm.VaultError.CorruptOrTampered):
        asyncio.run(recovery.restore(
            str(target), PASSWORD, "tablet passphrase", "python tablet", recovery_code=code, wrapper=tablet_keys))
    assert not target.exists()
    restored = asyncio.run(recovery.restore(
        str(target), PASSWORD, "tablet passphrase", "python tablet",
        recovery_code=code, wrapper=tablet_keys, listener=progress, accept_unverified_freshness=True))
    assert restored.freshness_verified_by == []
    assert restored.generation == 3 and restored.messages == 202 and restored.media == 1
    assert restored.recovery.recovery_code_used
    assert progress.seen and progress.seen[-1][0] == progress.seen[-1][1]
    vault.lock()

    tablet = vm.Vault.unlock_with_wrapper(str(target), tablet_keys)
    assert len(tablet.messages("family", 1000)) == 202
    assert len(tablet.search("PYTHON-CANARY", 500)) == 200
    with pytest.raises(vm.VaultError.WrongPassword):
        vm.Vault.unlock_with_wrapper(str(target), phone_keys)
    with pytest.raises(vm.VaultError.WrongPassword):
        vm.Vault.unlock_with_passphrase(str(target), "phone passphrase")
    tablet.lock()
    tablet = vm.Vault.unlock_with_passphrase(str(target), "tablet passphrase")
    assert any(e.kind == "backup_restored" for e in tablet.status().recent_events)


def test_recovery_errors_map_to_their_exceptions(server, tmp_path):
    vault = filled_vault(tmp_path / "phone", None, tmp_path)
    backup = vm.Backup(vault)
    # One server and no code would let that server alone recover the key: refused by default.
    with pytest.raises(vm.VaultError.InvalidInput):
        asyncio.run(backup.setup([server.url], ACCOUNT, PASSWORD, "p", vm.SetupOptions(threshold=1, recovery_code=False)))
    setup = asyncio.run(backup.setup([server.url], ACCOUNT, PASSWORD, "p"))
    asyncio.run(backup.run())
    recovery = vm.Recovery([server.url], ACCOUNT)

    with pytest.raises(vm.VaultError.BackupLoginFailed):
        asyncio.run(recovery.check_key("wrong password", setup.recovery_code))
    typo = setup.recovery_code.replace(setup.recovery_code[3], "Z" if setup.recovery_code[3] != "Z" else "Y", 1)
    with pytest.raises(vm.VaultError.InvalidInput):
        asyncio.run(recovery.check_key(PASSWORD, typo))
    with pytest.raises(vm.VaultError.InvalidInput):
        asyncio.run(recovery.check_key(PASSWORD))  # one share of two
    target = tmp_path / "new"
    token = vm.CancelToken()
    token.cancel()
    with pytest.raises(vm.VaultError.Cancelled):
        asyncio.run(recovery.restore(
            str(target), PASSWORD, "pw", "n", recovery_code=setup.recovery_code, cancel=token,
            accept_unverified_freshness=True))
    assert not target.exists()

    # A new split: the old code no longer matches.
    new_code = asyncio.run(backup.refresh_shares(PASSWORD))
    assert new_code and new_code != setup.recovery_code
    with pytest.raises(vm.VaultError.BackupLoginFailed):
        asyncio.run(recovery.check_key(PASSWORD, setup.recovery_code))
    # Password change: the new password works, the old one does not, the code stays valid.
    asyncio.run(backup.change_password(PASSWORD, "an even longer backup password"))
    with pytest.raises(vm.VaultError.BackupLoginFailed):
        asyncio.run(recovery.check_key(PASSWORD, new_code))
    assert asyncio.run(recovery.check_key("an even longer backup password", new_code)).recovery_code_used
    # Explicit server settings (no extra roots: plain HTTP on loopback; a short timeout) are taken.
    configured = vm.Recovery([server.url], ACCOUNT, vm.ServerConfig(root_certificates_der=[], timeout_secs=10))
    assert asyncio.run(configured.check_key("an even longer backup password", new_code)).recovery_code_used

    # Tampered backup data: the restore fails as corrupt and leaves nothing.
    objects = os.path.join(str(tmp_path / "server"), "objects", "accounts")
    packs = [os.path.join(d, f) for d, _, files in os.walk(objects) for f in files if f.startswith("pack-")]
    assert packs
    for pack in packs:
        raw = bytearray(open(pack, "rb").read())
        raw[60] ^= 1
        open(pack, "wb").write(bytes(raw))
    with pytest.raises(vm.VaultError.CorruptOrTampered):
        asyncio.run(recovery.restore(
            str(target), "an even longer backup password", "pw", "n", recovery_code=new_code,
            accept_unverified_freshness=True))
    assert not target.exists()

    # The server is gone: retry later.
    server.stop()
    with pytest.raises(vm.VaultError.RetryLater):
        asyncio.run(recovery.check_key("an even longer backup password", new_code))
    with pytest.raises(vm.VaultError.RetryLater):
        asyncio.run(backup.run())
    shutil.rmtree(tmp_path / "server")


def server_command(*args):
    """Runs a backup-server maintenance command and returns its standard output."""
    done = subprocess.run([SERVER_BIN, *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_login_tickets_delays_and_recovery_attempt_alerts(tmp_path):
    """A server with an authoriser: without a ticket a recovery is LoginTicketRequired; with one,
    wrong passwords are BackupLoginFailed and then BackupLoginDelayed with the wait; the phone
    reads the attempts as guardian_* security events."""
    key_file = tmp_path / "account-service.key"
    public_key = server_command("ticket-keygen", "--out", str(key_file))
    ticket = server_command("issue-ticket", "--signing-key", str(key_file), "--account", ACCOUNT)
    server = BackupServer(tmp_path / "server", ["--login-authoriser-key", public_key,
                                                "--login-attempt-limit", "2", "--login-delay-base-secs", "3600"])
    try:
        with_ticket = vm.ServerConfig(login_ticket=ticket)
        vault = filled_vault(tmp_path / "phone", None, tmp_path)
        backup = vm.Backup(vault, with_ticket)
        setup = asyncio.run(backup.setup([server.url], ACCOUNT, PASSWORD, "phone"))
        first = asyncio.run(backup.run())
        assert any(e.kind == "guardian_device_enrolled" for e in first.guardian_events.new_events)
        assert first.guardian_events.unread_guardians == []

        stranger = vm.Recovery([server.url], ACCOUNT)
        with pytest.raises(vm.VaultError.LoginTicketRequired) as refused:
            asyncio.run(stranger.check_key("a guess", setup.recovery_code))
        assert refused.value.guardian == 0
        owner = vm.Recovery([server.url], ACCOUNT, with_ticket)
        for _ in range(2):
            with pytest.raises(vm.VaultError.BackupLoginFailed):
                asyncio.run(owner.check_key("a wrong password", setup.recovery_code))
        with pytest.raises(vm.VaultError.BackupLoginDelayed) as delayed:
            asyncio.run(owner.check_key(PASSWORD, setup.recovery_code))
        assert 3500 < delayed.value.retry_after_secs <= 3600

        fetched = asyncio.run(backup.fetch_guardian_events())
        kinds = [e.kind for e in fetched.new_events]
        assert kinds == ["guardian_login_started", "guardian_login_started", "guardian_login_delayed"], kinds
        assert all(e.detail.startswith(f"guardian 1 ({server.url}), with a login ticket") for e in fetched.new_events)
        assert asyncio.run(backup.fetch_guardian_events()).new_events == []
        assert any(e.kind == "guardian_login_delayed" for e in vault.status().recent_events)
        vault.lock()
    finally:
        server.stop()
