package uniffi.vault_mobile

import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir
import java.nio.file.Files
import java.nio.file.Path
import kotlin.io.path.name
import kotlin.random.Random

private const val PASSWORD = "a long backup password from kotlin"
private const val ACCOUNT = "kotlin-user@example.org"

/**
 * Backup and recovery through the Kotlin bindings, end to end, against real `backup-server`
 * processes on loopback: setup with two servers and a recovery code, backups with progress and
 * cancellation, a restore on a "new device" with the password alone and with one server plus the
 * recovery code, and the error cases. Mirrors mobile-bindings/tests/python/test_backup_bindings.py.
 */
class BackupTest {
    @TempDir
    lateinit var tmp: Path

    private val servers = mutableListOf<BackupServer>()

    private fun server(name: String): BackupServer = BackupServer(tmp.resolve(name)).also { servers.add(it) }

    @AfterEach
    fun stopServers() = servers.forEach { it.stop() }

    private suspend fun filledVault(dir: Path, wrapper: PlatformKeyWrapper?): Vault {
        val vault = Vault.create(dir.toString(), "phone passphrase", wrapper)
        repeat(200) { vault.addMessage("family", "ann", "message $it: KOTLIN-CANARY") }
        val photo = tmp.resolve("photo.bin").also { Files.write(it, Random.nextBytes(2_500_000)) }
        vault.importMediaFile(photo.toString(), conversation = "family")
        return vault
    }

    @Test
    fun `backup to two servers, restore on a new device with the password, or one server and the recovery code`() = runBlocking {
        val (a, b) = server("server-a") to server("server-b")
        val phoneKeys = JvmKeyWrapper.generate("phone-keystore")
        val vault = filledVault(tmp.resolve("phone"), phoneKeys)
        val backup = Backup(vault)
        val setup = backup.setup(listOf(a.url, b.url), ACCOUNT, PASSWORD, deviceName = "kotlin phone")
        assertEquals("2 of {2 servers, recovery code}", setup.policy)
        assertEquals(2.toUByte(), setup.threshold)
        assertEquals(3.toUByte(), setup.shares)
        assertFalse(setup.singleProvider)
        val code = checkNotNull(setup.recoveryCode)
        val info = checkNotNull(backup.recoveryInfo())
        assertEquals(ACCOUNT, info.account)
        assertEquals(listOf(a.url, b.url), info.servers)
        assertEquals(setup.safetyNumber, info.safetyNumber)

        // The first run, its progress as a Flow.
        val events = withProgress { listener, cancel -> backup.run(listener, cancel) }.toList()
        val first = (events.last() as ProgressEvent.Finished).result
        assertEquals(1uL, first.generation)
        assertEquals(1uL, first.mediaUploaded)
        assertTrue(first.headCopiesFailed.isEmpty())
        assertTrue(events.any { it is ProgressEvent.Running }, "the run reported progress")
        vault.addMessage("family", "bob", "after the first backup")
        val second = backup.run()
        assertEquals(2uL, second.generation)
        assertEquals(1uL, second.mediaReused)
        assertEquals(0uL, second.mediaUploaded)
        // A manifest holds the newest snapshot only (forward secrecy, ADR 0017).
        assertEquals(listOf(2uL), backup.snapshots().map { it.generation })
        assertEquals(emptyList<String>(), backup.verify(1.0))
        assertEquals(
            listOf("kotlin phone" to true, "kotlin phone" to true),
            backup.devices().map { it.name to it.thisDevice },
        )

        // A cancelled backup publishes nothing; the next run completes.
        vault.addMessage("family", "bob", "third")
        assertThrows<VaultException.Cancelled> { runBlocking { backup.run(cancel = CancelToken().apply { cancel() }) } }
        assertEquals(listOf(2uL), backup.snapshots().map { it.generation })
        assertEquals(3uL, backup.run().generation)

        // The phone is lost. A tablet restores with the password alone (both servers' shares).
        val tabletKeys = JvmKeyWrapper.generate("tablet-keystore")
        val tablet = tmp.resolve("tablet")
        val progress = Recorder()
        val restored = Recovery(listOf(a.url, b.url), ACCOUNT).restore(
            tablet.toString(), PASSWORD, passphrase = "tablet passphrase", deviceName = "kotlin tablet",
            wrapper = tabletKeys, listener = progress,
        )
        assertEquals(3uL, restored.generation)
        assertEquals(listOf(b.url), restored.freshnessVerifiedBy)
        assertEquals(202uL, restored.messages)
        assertEquals(1uL, restored.media)
        assertFalse(restored.recovery.recoveryCodeUsed)
        assertTrue(progress.seen.isNotEmpty() && progress.seen.last().first == progress.seen.last().second)
        vault.lock()

        Vault.unlockWithWrapper(tablet.toString(), tabletKeys).use { v ->
            assertEquals(202, v.messages("family", 1000u).size)
            assertEquals(200, v.search("KOTLIN-CANARY", 500u).size)
            v.lock()
        }
        assertThrows<VaultException.WrongPassword> { Vault.unlockWithWrapper(tablet.toString(), phoneKeys) }
        assertThrows<VaultException.WrongPassword> { Vault.unlockWithPassphrase(tablet.toString(), "phone passphrase") }

        // Server B is gone too: a third device restores from server A with the recovery code.
        b.stop()
        val third = tmp.resolve("third")
        // With B out of reach nothing but the data server vouches that its backup is the newest:
        // refused unless accepted explicitly, and then reported as unverified.
        assertThrows<VaultException.CorruptOrTampered> {
            runBlocking {
                Recovery(listOf(a.url), ACCOUNT).restore(
                    third.toString(), PASSWORD, passphrase = "third passphrase", deviceName = "kotlin third",
                    recoveryCode = code,
                )
            }
        }
        assertFalse(Files.exists(third))
        val fromCode = Recovery(listOf(a.url), ACCOUNT).restore(
            third.toString(), PASSWORD, passphrase = "third passphrase", deviceName = "kotlin third",
            recoveryCode = code, acceptUnverifiedFreshness = true,
        )
        assertTrue(fromCode.freshnessVerifiedBy.isEmpty())
        assertTrue(fromCode.recovery.recoveryCodeUsed)
        assertEquals(202uL, fromCode.messages)
        Vault.unlockWithPassphrase(third.toString(), "third passphrase").use { v ->
            assertTrue(v.status().recentEvents.any { it.kind == "backup_restored" })
            v.lock()
        }
    }

    @Test
    fun `recovery errors surface as their exception types`() = runBlocking {
        val server = server("server")
        val vault = filledVault(tmp.resolve("phone"), null)
        val backup = Backup(vault)
        // One server and no code would let that server alone recover the key: refused by default.
        assertThrows<VaultException.InvalidInput> {
            runBlocking { backup.setup(listOf(server.url), ACCOUNT, PASSWORD, "p", SetupOptions(threshold = 1u, recoveryCode = false)) }
        }
        val setup = backup.setup(listOf(server.url), ACCOUNT, PASSWORD, deviceName = "p")
        val code = checkNotNull(setup.recoveryCode)
        backup.run()
        val recovery = Recovery(listOf(server.url), ACCOUNT)

        assertThrows<VaultException.BackupLoginFailed> { runBlocking { recovery.checkKey("wrong password", code) } }
        val typo = code.replaceFirst(code[3], if (code[3] != 'Z') 'Z' else 'Y')
        assertThrows<VaultException.InvalidInput> { runBlocking { recovery.checkKey(PASSWORD, typo) } }
        assertThrows<VaultException.InvalidInput> { runBlocking { recovery.checkKey(PASSWORD) } } // one share of two
        val target = tmp.resolve("new")
        assertThrows<VaultException.Cancelled> {
            runBlocking {
                recovery.restore(
                    target.toString(), PASSWORD, "pw", "n", recoveryCode = code,
                    cancel = CancelToken().apply { cancel() }, acceptUnverifiedFreshness = true,
                )
            }
        }
        assertFalse(Files.exists(target))

        // A new split: the old code no longer matches.
        val newCode = checkNotNull(backup.refreshShares(PASSWORD))
        assertNotEquals(code, newCode)
        assertThrows<VaultException.BackupLoginFailed> { runBlocking { recovery.checkKey(PASSWORD, code) } }
        // Password change: the new password works, the old one does not, the code stays valid.
        val newPassword = "an even longer backup password"
        backup.changePassword(PASSWORD, newPassword)
        assertThrows<VaultException.BackupLoginFailed> { runBlocking { recovery.checkKey(PASSWORD, newCode) } }
        assertTrue(recovery.checkKey(newPassword, newCode).recoveryCodeUsed)
        val configured = Recovery(listOf(server.url), ACCOUNT, ServerConfig(timeoutSecs = 10u))
        assertTrue(configured.checkKey(newPassword, newCode).recoveryCodeUsed)

        // Tampered backup data: the restore fails as corrupt and leaves nothing.
        val packs = Files.walk(server.data.resolve("objects").resolve("accounts")).use { paths ->
            paths.filter { Files.isRegularFile(it) && it.name.startsWith("pack-") }.toList()
        }
        assertTrue(packs.isNotEmpty())
        for (pack in packs) {
            val raw = Files.readAllBytes(pack)
            raw[60] = (raw[60].toInt() xor 1).toByte()
            Files.write(pack, raw)
        }
        assertThrows<VaultException.CorruptOrTampered> {
            runBlocking {
                recovery.restore(target.toString(), newPassword, "pw", "n", recoveryCode = newCode, acceptUnverifiedFreshness = true)
            }
        }
        assertFalse(Files.exists(target))

        // The server is gone: retry later.
        server.stop()
        val unreachable = assertThrows<VaultException.RetryLater> { runBlocking { recovery.checkKey(newPassword, newCode) } }
        assertEquals(RetryReason.SERVER_UNREACHABLE, unreachable.reason)
        assertThrows<VaultException.RetryLater> { runBlocking { backup.run() } }
        vault.lock()
    }

    @Test
    fun `login tickets, login delays and recovery attempt alerts`() = runBlocking {
        // A server with an authoriser: it answers password logins only with a ticket from the
        // app's account service, and delays them after two counted starts.
        val keyFile = tmp.resolve("account-service.key")
        val publicKey = serverCommand("ticket-keygen", "--out", keyFile.toString())
        val ticket = serverCommand("issue-ticket", "--signing-key", keyFile.toString(), "--account", ACCOUNT)
        val server = BackupServer(
            tmp.resolve("server"),
            listOf(
                "--login-authoriser-key", publicKey,
                "--login-attempt-limit", "2", "--login-delay-base-secs", "3600",
            ),
        ).also { servers.add(it) }
        val withTicket = ServerConfig(loginTicket = ticket)
        val vault = filledVault(tmp.resolve("phone"), null)
        val backup = Backup(vault, withTicket)
        val setup = backup.setup(listOf(server.url), ACCOUNT, PASSWORD, deviceName = "phone")
        val code = checkNotNull(setup.recoveryCode)
        val first = backup.run()
        assertTrue(first.guardianEvents.newEvents.any { it.kind == "guardian_device_enrolled" }, "${first.guardianEvents}")
        assertEquals(emptyList<String>(), first.guardianEvents.unreadGuardians)

        // Without a ticket a recovery is refused before any password is tried.
        val stranger = Recovery(listOf(server.url), ACCOUNT)
        val refused = assertThrows<VaultException.LoginTicketRequired> {
            runBlocking { stranger.checkKey("a guess", code) }
        }
        assertEquals(0u, refused.guardian)
        // With one, wrong passwords fail, and then even the right one waits: the delay is said.
        val owner = Recovery(listOf(server.url), ACCOUNT, withTicket)
        repeat(2) {
            assertThrows<VaultException.BackupLoginFailed> { runBlocking { owner.checkKey("a wrong password", code) } }
        }
        val delayed = assertThrows<VaultException.BackupLoginDelayed> { runBlocking { owner.checkKey(PASSWORD, code) } }
        assertTrue(delayed.retryAfterSecs in 3501uL..3600uL, "retryAfterSecs = ${delayed.retryAfterSecs}")

        // The phone reads the attempts from the guardian's account log as security events, once.
        val fetched = backup.fetchGuardianEvents()
        assertEquals(
            listOf("guardian_login_started", "guardian_login_started", "guardian_login_delayed"),
            fetched.newEvents.map { it.kind },
        )
        for (event in fetched.newEvents) {
            assertTrue(event.detail.startsWith("guardian 1 (${server.url}), with a login ticket"), event.detail)
        }
        assertEquals(emptyList<SecurityEvent>(), backup.fetchGuardianEvents().newEvents)
        assertTrue(vault.status().recentEvents.any { it.kind == "guardian_login_delayed" })
        vault.lock()
    }
}
