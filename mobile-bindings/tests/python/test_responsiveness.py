"""The vault stays responsive while a backup uploads: a backup that takes seconds (a real
backup-server behind a throttling proxy, a vault holding a few MiB of media) runs on its own
thread while another thread searches and adds messages; every one of those calls must return
within 100 ms, while the backup is still running. The backup must still be one consistent
snapshot: restored on a new device it holds every message that existed when it started, plus
at most a prefix (in insertion order) of those added during the run, never a torn mix, and the
media bytes unchanged. Run by scripts/test.sh after the workspace build (it needs
target/debug/backup-server)."""

import asyncio
import os
import threading
import time
from urllib.parse import urlsplit

import pytest

import vault_mobile as vm
from test_backup_bindings import ACCOUNT, PASSWORD, BackupServer
from test_vault_bindings import Recorder, SoftKeystore
from throttle_proxy import ThrottlingProxy

MAX_CALL_SECONDS = 0.100
UPLOAD_RATE = 3 << 19  # 1.5 MiB/s each way through the proxy during the backup
MEDIA_BYTES = 7 << 20
MESSAGES_BEFORE = 300
CALLS = 20
CALL_SPACING = 0.1  # seconds between rounds of calls


class StartRecorder(Recorder):
    """A Recorder that also signals the first progress report with bytes done."""

    def __init__(self):
        super().__init__()
        self.started = threading.Event()

    def on_progress(self, done, total):
        super().on_progress(done, total)
        if done > 0:
            self.started.set()


@pytest.fixture
def server(tmp_path):
    s = BackupServer(tmp_path / "server")
    yield s
    s.stop()


@pytest.fixture
def proxy(server):
    address = urlsplit(server.url)
    p = ThrottlingProxy((address.hostname, address.port))
    yield p
    p.stop()


def test_search_and_add_message_stay_fast_while_a_backup_uploads(server, proxy, tmp_path):
    phone_keys = SoftKeystore("phone-keystore")
    vault = vm.Vault.create(str(tmp_path / "phone"), "phone passphrase", phone_keys)
    for i in range(MESSAGES_BEFORE):
        vault.add_message("family", "ann", f"message {i} before the backup canary")
    media = os.urandom(MEDIA_BYTES)
    source = tmp_path / "video.bin"
    source.write_bytes(media)
    media_id = asyncio.run(vault.import_media_file(str(source), conversation="family"))
    before = [m.body for m in vault.messages("family", 10_000)]
    assert len(before) == MESSAGES_BEFORE

    # Setup through the proxy, unthrottled; the run goes through it throttled.
    backup = vm.Backup(vault)
    setup = asyncio.run(backup.setup([proxy.url], ACCOUNT, PASSWORD, "python phone"))
    code = setup.recovery_code
    assert code

    proxy.set_rate(UPLOAD_RATE)
    up_before_run = proxy.up.bytes
    listener = StartRecorder()
    outcome = {}

    def run_backup():
        outcome["started"] = time.perf_counter()
        try:
            outcome["result"] = asyncio.run(backup.run(listener))
        except BaseException as e:  # reported by the main thread
            outcome["error"] = e
        outcome["finished"] = time.perf_counter()

    runner = threading.Thread(target=run_backup, name="backup-run")
    runner.start()
    try:
        # The backup has demonstrably started: it reported bytes done and sent data upstream.
        assert listener.started.wait(20), f"the backup reported no progress: {outcome}"
        deadline = time.monotonic() + 20
        while proxy.up.bytes - up_before_run < 256 << 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proxy.up.bytes - up_before_run >= 256 << 10, "the backup sent nothing through the proxy"

        calls = []  # (name, seconds, returned at)
        added = []
        hits = []
        for i in range(CALLS):
            start = time.perf_counter()
            hits.append(len(vault.search("canary", 20)))
            returned = time.perf_counter()
            calls.append(("search", returned - start, returned))
            body = f"added during the backup {i}"
            vault.add_message("family", "bob", body)
            added.append(body)
            start, returned = returned, time.perf_counter()
            calls.append(("add_message", returned - start, returned))
            time.sleep(CALL_SPACING)
    finally:
        runner.join(60)
    assert not runner.is_alive(), "the backup did not finish"

    assert "error" not in outcome, f"the backup failed: {outcome.get('error')!r}"
    result = outcome["result"]
    backup_seconds = outcome["finished"] - outcome["started"]
    assert result.generation == 1 and result.media_uploaded == 1
    assert backup_seconds >= 2.0, f"the backup took only {backup_seconds:.2f} s: too fast to show anything"
    assert hits == [20] * CALLS, "search found the messages during the backup"

    # The backup is one snapshot: everything from before, then a prefix of what was added.
    proxy.set_rate(None)
    tablet_keys = SoftKeystore("tablet-keystore")
    target = tmp_path / "tablet"
    recovery = vm.Recovery([proxy.url], ACCOUNT)
    restored = asyncio.run(recovery.restore(
        str(target), PASSWORD, "tablet passphrase", "python tablet", recovery_code=code, wrapper=tablet_keys,
        accept_unverified_freshness=True))
    assert restored.generation == 1 and restored.media == 1
    tablet = vm.Vault.unlock_with_wrapper(str(target), tablet_keys)
    bodies = [m.body for m in tablet.messages("family", 10_000)]
    assert len(bodies) == len(set(bodies)) == restored.messages
    assert set(before) <= set(bodies), "a message from before the backup is missing"
    extra = set(bodies) - set(before)
    kept = len(extra)
    assert extra == set(added[:kept]), f"torn snapshot: restored {sorted(extra)} of {added}"
    assert len(tablet.search("canary", 1_000)) == MESSAGES_BEFORE
    assert len(tablet.search("during", 1_000)) == kept
    out = tmp_path / "restored-video.bin"
    assert asyncio.run(tablet.export_media(media_id, str(out))) == MEDIA_BYTES
    assert out.read_bytes() == media
    tablet.lock()
    vault.lock()

    # Responsiveness: every call was fast, and they ran while the backup was still uploading.
    slowest = max(calls, key=lambda c: c[1])
    by_name = {n: max(s for name, s, _ in calls if name == n) for n in ("search", "add_message")}
    during = sum(1 for _, _, returned in calls if returned < outcome["finished"])
    summary = (f"backup {backup_seconds:.2f} s; max search {by_name['search'] * 1000:.0f} ms, "
               f"max add_message {by_name['add_message'] * 1000:.0f} ms; "
               f"{during} of {len(calls)} calls returned during the backup; "
               f"{kept} of {len(added)} added messages in the snapshot")
    print(summary)
    assert slowest[1] < MAX_CALL_SECONDS, f"{slowest[0]} took {slowest[1] * 1000:.0f} ms: {summary}"
    assert during >= len(calls) * 3 // 4, f"the calls did not overlap the backup: {summary}"
