package uniffi.vault_mobile

import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.delay
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withContext
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir
import java.net.InetSocketAddress
import java.net.URI
import java.nio.file.Files
import java.nio.file.Path
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import kotlin.random.Random

/**
 * The vault stays responsive while a backup uploads, seen from coroutines: a backup that takes
 * seconds (a real backup-server behind a throttling proxy, a vault holding a few MiB of media)
 * runs in one coroutine while another searches and adds messages; each call must return within
 * 100 ms while the backup is still running, and the backup must be one consistent snapshot.
 * Mirrors mobile-bindings/tests/python/test_responsiveness.py.
 */
class ResponsivenessTest {
    @TempDir
    lateinit var tmp: Path

    @Test
    fun `search and addMessage from another coroutine return while a backup uploads`() = runBlocking {
        BackupServer(tmp.resolve("server")).use { server ->
            val address = URI(server.url)
            ThrottlingProxy(InetSocketAddress(address.host, address.port)).use { proxy ->
                check(proxy)
            }
        }
    }

    private suspend fun check(proxy: ThrottlingProxy) = coroutineScope {
        val vault = Vault.create(tmp.resolve("phone").toString(), "phone passphrase", JvmKeyWrapper.generate("phone"))
        repeat(300) { vault.addMessage("family", "ann", "message $it before the backup canary") }
        val media = Random.nextBytes(7 shl 20)
        val source = tmp.resolve("video.bin").also { Files.write(it, media) }
        val mediaId = vault.importMediaFile(source.toString(), conversation = "family")
        val before = vault.messages("family", 10_000u).map { it.body }.toSet()

        val backup = Backup(vault)
        val code = checkNotNull(backup.setup(listOf(proxy.url), "kotlin-user@example.org", "a long backup password", "kotlin phone").recoveryCode)
        proxy.setRate(3L shl 19) // 1.5 MiB/s each way
        val upBefore = proxy.up.bytes.get()
        val started = CountDownLatch(1)
        val listener = object : ProgressListener {
            override fun onProgress(done: ULong, total: ULong?) {
                if (done > 0uL) started.countDown()
            }
        }
        val startedAt = System.nanoTime()
        val running = async(Dispatchers.Default) { backup.run(listener).also { finishedAt = System.nanoTime() } }
        withContext(Dispatchers.IO) { assertTrue(started.await(20, TimeUnit.SECONDS), "the backup reported no progress") }
        withTimeout(20_000) { while (proxy.up.bytes.get() - upBefore < 256 shl 10) delay(10) }

        val calls = mutableListOf<Triple<String, Long, Long>>() // name, nanoseconds, returned at
        val added = mutableListOf<String>()
        withContext(Dispatchers.IO) {
            repeat(20) { i ->
                var start = System.nanoTime()
                assertEquals(20, vault.search("canary", 20u).size)
                var end = System.nanoTime()
                calls.add(Triple("search", end - start, end))
                start = end
                vault.addMessage("family", "bob", "added during the backup $i").also { added.add("added during the backup $i") }
                end = System.nanoTime()
                calls.add(Triple("addMessage", end - start, end))
                Thread.sleep(100)
            }
        }
        val result = withTimeout(60_000) { running.await() }
        val backupSeconds = (finishedAt - startedAt) / 1e9
        assertEquals(1uL, result.generation)
        assertTrue(backupSeconds >= 2.0, "the backup took only $backupSeconds s: too fast to show anything")

        // One snapshot: everything from before, then a prefix of what was added.
        proxy.setRate(null)
        val tabletKeys = JvmKeyWrapper.generate("tablet")
        val tablet = tmp.resolve("tablet").toString()
        val restored = Recovery(listOf(proxy.url), "kotlin-user@example.org")
            .restore(tablet, "a long backup password", "tablet passphrase", "kotlin tablet", recoveryCode = code, wrapper = tabletKeys, acceptUnverifiedFreshness = true)
        Vault.unlockWithWrapper(tablet, tabletKeys).use { t ->
            val bodies = t.messages("family", 10_000u).map { it.body }
            assertEquals(restored.messages.toInt(), bodies.size)
            assertTrue(bodies.toSet().containsAll(before), "a message from before the backup is missing")
            val extra = bodies.toSet() - before
            assertEquals(added.take(extra.size).toSet(), extra, "torn snapshot")
            val out = tmp.resolve("restored.bin")
            t.exportMedia(mediaId, out.toString())
            assertArrayEquals(media, Files.readAllBytes(out))
            t.lock()
        }
        vault.lock()

        val slowest = calls.maxBy { it.second }
        val during = calls.count { it.third < finishedAt }
        val summary = "backup %.2f s; slowest %s %.1f ms; %d of %d calls returned during the backup"
            .format(backupSeconds, slowest.first, slowest.second / 1e6, during, calls.size)
        println(summary)
        assertTrue(slowest.second < 100_000_000, summary)
        assertTrue(during >= calls.size * 3 / 4, "the calls did not overlap the backup: $summary")
    }

    @Volatile
    private var finishedAt = Long.MAX_VALUE
}
