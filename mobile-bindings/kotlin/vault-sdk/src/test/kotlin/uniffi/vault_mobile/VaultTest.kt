package uniffi.vault_mobile

import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir
import java.io.ByteArrayInputStream
import java.io.IOException
import java.io.InputStream
import java.nio.file.Files
import java.nio.file.Path
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicBoolean
import java.util.concurrent.atomic.AtomicReference
import kotlin.random.Random

/**
 * The vault through its Kotlin bindings on the JVM, end to end: the real library (loaded by JNA),
 * the JVM key wrapper and a passphrase, suspend calls from coroutines, chunked media, and every
 * error case surfacing as its exception type. Mirrors mobile-bindings/tests/python/test_vault_bindings.py.
 */
class VaultTest {
    @TempDir
    lateinit var tmp: Path

    private val dir: String get() = tmp.resolve("vault").toString()

    @Test
    fun `messages, search, secrets and status with the JVM key wrapper`() = runBlocking {
        val keys = CountingWrapper(JvmKeyWrapper.generate("kotlin-test-keystore"))
        val vault = Vault.create(dir, "correct horse", keys)
        assertEquals(1, keys.calls, "the slot key was wrapped by the JVM wrapper")
        val first = vault.addMessage("family", "alice", "dinner at eight, crème brûlée")
        vault.addMessage("family", "bob", "on my way")
        vault.putSecret("token", byteArrayOf(0, 1) + "secret".toByteArray())
        vault.lock()
        assertThrows<VaultException.InvalidInput> { vault.messages("family", 10u) }
        vault.close()

        Vault.unlockWithWrapper(dir, keys).use { unlocked ->
            val messages = unlocked.messages("family", 10u)
            assertEquals(listOf("dinner at eight, crème brûlée", "on my way"), messages.map { it.body })
            assertEquals(first, messages[0].id)
            assertEquals("received", messages[0].status)
            val hits = unlocked.search("creme brulee", 5u)
            assertEquals(listOf("alice"), hits.map { it.message.sender })
            assertArrayEquals(byteArrayOf(0, 1) + "secret".toByteArray(), unlocked.secret("token"))
            assertNull(unlocked.secret("absent"))

            // Paging back with `before`, as an app's list view does.
            val added = (0 until 5).map { unlocked.addMessage("paged", "carol", "page $it") }
            val pages = mutableListOf<List<String>>()
            var page = unlocked.messages("paged", 2u)
            while (page.isNotEmpty()) {
                pages.add(0, page.map { it.body })
                page = unlocked.messages("paged", 2u, before = page.first().id)
            }
            assertEquals(listOf(listOf("page 0"), listOf("page 1", "page 2"), listOf("page 3", "page 4")), pages)
            assertEquals(listOf("page 0", "page 1"), unlocked.messages("paged", 10u, before = added[2]).map { it.body })

            val status = unlocked.status()
            assertEquals(7uL, status.messages)
            assertTrue(status.cipherVersion.startsWith("4."))
            assertEquals(listOf("passphrase" to false, "key_wrapper" to false), status.slots.map { it.kind to it.hardwareBacked })
            assertEquals("kotlin-test-keystore", status.slots[1].label)
            assertEquals(1u, status.unlockedBy)
            assertTrue(status.recentEvents.any { it.kind == "unlock_succeeded" })
            assertTrue(unlocked.verify().all { it.problems.isEmpty() })
            unlocked.lock()
        }
        Vault.unlockWithPassphrase(dir, "correct horse").use { assertEquals(0u, it.status().unlockedBy) }
    }

    @Test
    fun `the JVM wrapper keeps its key in a file and rejects another key's blobs`() {
        val file = tmp.resolve("device.key")
        val keys = JvmKeyWrapper.loadOrCreate(file)
        assertEquals(32L, Files.size(file))
        assertFalse(keys.hardwareBacked())
        Vault.create(dir, "pw", keys).use { it.lock() }
        Vault.unlockWithWrapper(dir, JvmKeyWrapper.loadOrCreate(file)).use { it.lock() }
        assertThrows<VaultException.WrongPassword> { Vault.unlockWithWrapper(dir, JvmKeyWrapper.generate()) }
        assertThrows<KeyWrapperException.Rejected> { keys.unwrap(ByteArray(10)) }
        Files.write(file, ByteArray(5))
        assertThrows<IllegalArgumentException> { JvmKeyWrapper.loadOrCreate(file) }
    }

    @Test
    fun `media by path and by chunks with byte ranges`() = runBlocking {
        Vault.create(dir, "pw").use { vault ->
            val message = vault.addMessage("c", "s", "see attachment")
            val data = Random.nextBytes(300_000)
            val source = tmp.resolve("photo.bin").also { Files.write(it, data) }
            val byPath = vault.importMediaFile(source.toString(), conversation = "c", message = message)
            vault.openMedia(byPath).use { reader ->
                assertEquals(data.size.toULong(), reader.length())
                assertArrayEquals(data.copyOfRange(65_530, 65_550), reader.read(65_530u, 20u))
                assertArrayEquals(data.copyOfRange(data.size - 5, data.size), reader.read((data.size - 5).toULong(), 100u))
                assertArrayEquals(data, reader.inputStream(chunkSize = 10_000).readAllBytes())
            }
            val out = tmp.resolve("out.bin")
            assertEquals(data.size.toULong(), vault.exportMedia(byPath, out.toString()))
            assertArrayEquals(data, Files.readAllBytes(out))
            val range = tmp.resolve("range.bin")
            assertEquals(1000uL, vault.exportMedia(byPath, range.toString(), offset = 70_000u, length = 1000u))
            assertArrayEquals(data.copyOfRange(70_000, 71_000), Files.readAllBytes(range))

            // The generated chunked API, as an app feeding bytes from a network stream would.
            val importer = vault.beginMediaImport()
            for (start in data.indices step 7_000) importer.write(data.copyOfRange(start, minOf(start + 7_000, data.size)))
            val byChunks = importer.finish()
            assertArrayEquals(data, vault.openMedia(byChunks).use { it.inputStream().readAllBytes() })
            assertThrows<VaultException.InvalidInput> { importer.write("late".toByteArray()) }
            importer.close()

            // The InputStream helper.
            val byStream = vault.importMedia(ByteArrayInputStream(data), conversation = "c", chunkSize = 64 * 1024)
            assertArrayEquals(data, vault.openMedia(byStream).use { it.inputStream().readAllBytes() })

            val cancelled = vault.beginMediaImport()
            cancelled.write("partial".toByteArray())
            cancelled.cancel()
            cancelled.close()
            // A source that fails midway: nothing is stored, the source's exception comes back.
            val failing = object : InputStream() {
                var left = 100_000
                override fun read(): Int = if (left-- > 0) 7 else throw IOException("network gone")
            }
            assertThrows<IOException> { runBlocking { vault.importMedia(failing) } }
            assertEquals(3uL, vault.status().mediaItems, "a cancelled or failed import stores nothing")

            assertTrue(vault.deleteMedia(byPath))
            assertThrows<VaultException.NotFound> { vault.openMedia(byPath) }
            assertThrows<VaultException.InvalidInput> { vault.openMedia("not-hex") }
            vault.lock()
        }
    }

    @Test
    fun `deleting one message removes it, its search entry and its media`() = runBlocking {
        Vault.create(dir, "pw").use { vault ->
            val keep = vault.addMessage("c", "alice", "keep this one")
            val doomed = vault.addMessage("c", "bob", "qqzjktcanary meet at the mill")
            val source = tmp.resolve("photo.bin").also { Files.write(it, Random.nextBytes(10_000)) }
            val photo = vault.importMediaFile(source.toString(), conversation = "c", message = doomed)
            assertEquals(1, vault.search("qqzjktcanary", 5u).size)
            assertTrue(vault.deleteMessage(doomed))
            assertEquals(listOf(keep), vault.messages("c", 10u).map { it.id })
            assertTrue(vault.search("qqzjktcanary", 5u).isEmpty())
            assertThrows<VaultException.NotFound> { vault.openMedia(photo) }
            assertEquals(0L, Files.size(tmp.resolve("vault").resolve("vault.db-wal")), "the WAL was checkpointed")
            // An id that names no message (any more): false, and nothing changes.
            assertFalse(vault.deleteMessage(doomed))
            assertFalse(vault.deleteMessage(keep + 1000))
            assertEquals(1uL, vault.status().messages)
            vault.lock()
            assertThrows<VaultException.InvalidInput> { vault.deleteMessage(keep) }
        }
        Vault.unlockWithPassphrase(dir, "pw").use { again ->
            assertEquals(listOf("keep this one"), again.messages("c", 10u).map { it.body })
            again.lock()
        }
    }

    @Test
    fun `tampered media throws CorruptOrTampered and leaves no export`() = runBlocking {
        Vault.create(dir, "pw").use { vault ->
            val source = tmp.resolve("a.bin").also { Files.write(it, Random.nextBytes(200_000)) }
            val id = vault.importMediaFile(source.toString())
            val stored = tmp.resolve("vault").resolve("media").resolve(id)
            val raw = Files.readAllBytes(stored)
            raw[100_000] = (raw[100_000].toInt() xor 1).toByte()
            Files.write(stored, raw)
            assertThrows<VaultException.CorruptOrTampered> { vault.openMedia(id).use { it.read(99_000u, 5_000u) } }
            val out = tmp.resolve("x")
            val error = assertThrows<VaultException.CorruptOrTampered> { runBlocking { vault.exportMedia(id, out.toString()) } }
            assertEquals(DamagedData.MEDIA, error.`object`)
            assertFalse(Files.exists(out))
            vault.lock()
        }
    }

    @Test
    fun `root key and wrapper key rotation`() = runBlocking {
        val old = JvmKeyWrapper.generate()
        Vault.create(dir, "pw", old).use { vault ->
            vault.addMessage("c", "s", "kept")
            assertThrows<VaultException.InvalidInput> { runBlocking { vault.rotateRootKey(listOf(), listOf()) } }
            vault.rotateRootKey(listOf(), listOf(old))
            val new = JvmKeyWrapper.generate()
            assertEquals(listOf(1u), vault.rotateWrapperKey(old, new))
            vault.lock()
            assertThrows<VaultException.WrongPassword> { Vault.unlockWithWrapper(dir, old) }
            Vault.unlockWithWrapper(dir, new).use { again ->
                assertEquals(listOf("kept"), again.messages("c", 5u).map { it.body })
                val kinds = again.status().recentEvents.map { it.kind }
                assertTrue("root_key_rotated" in kinds && "wrapper_key_rotated" in kinds, kinds.toString())
                again.lock()
            }
        }
    }

    @Test
    fun `every error case surfaces as its exception type`() {
        val keys = JvmKeyWrapper.generate()
        Vault.create(dir, "right", keys).use { it.lock() }
        assertThrows<VaultException.WrongPassword> { Vault.unlockWithPassphrase(dir, "wrong") }
        assertThrows<VaultException.NotFound> { Vault.unlockWithPassphrase(tmp.resolve("nothing").toString(), "right") }
        assertThrows<VaultException.Cancelled> { Vault.unlockWithWrapper(dir, FailingWrapper(keys) { KeyWrapperException.Cancelled() }) }
        assertThrows<VaultException.KeyInvalidated> {
            Vault.unlockWithWrapper(dir, FailingWrapper(keys) { KeyWrapperException.KeyInvalidated() })
        }
        val busy = assertThrows<VaultException.RetryLater> {
            Vault.unlockWithWrapper(dir, FailingWrapper(keys) { KeyWrapperException.Unavailable() })
        }
        assertEquals(RetryReason.KEYSTORE_UNAVAILABLE, busy.reason)
        assertThrows<VaultException.WrongPassword> { Vault.unlockWithWrapper(dir, FailingWrapper(keys) { KeyWrapperException.Rejected() }) }
        // A wrapper that throws something unexpected surfaces as Other, without the exception's text.
        val other = assertThrows<VaultException.Other> {
            Vault.unlockWithWrapper(dir, FailingWrapper(keys) { IllegalStateException("secret app detail") })
        }
        assertFalse(other.detail.contains("secret app detail"), other.detail)

        Vault.unlockWithPassphrase(dir, "right").use { vault ->
            assertThrows<VaultException.InvalidInput> { vault.search("   ", 5u) }
            vault.removeSlot(1u)
            assertThrows<VaultException.InvalidInput> { vault.removeSlot(0u) } // the last slot
            vault.lock()
        }
        // A newer key-slot file version.
        val slots = tmp.resolve("vault").resolve("keyslots")
        val raw = Files.readAllBytes(slots)
        raw[8] = 9
        Files.write(slots, raw)
        assertThrows<VaultException.UnsupportedVersion> { Vault.unlockWithPassphrase(dir, "right") }
        // Damaged database pages.
        raw[8] = 1
        Files.write(slots, raw)
        val db = tmp.resolve("vault").resolve("vault.db")
        val pages = Files.readAllBytes(db)
        pages[200] = (pages[200].toInt() xor 1).toByte()
        Files.write(db, pages)
        assertThrows<VaultException.CorruptOrTampered> { Vault.unlockWithPassphrase(dir, "right") }
    }

    @Test
    fun `progress as a Flow and cancellation from coroutines`() = runBlocking {
        Vault.create(dir, "pw").use { vault ->
            val data = Random.nextBytes(4_000_000)
            val source = tmp.resolve("video.bin").also { Files.write(it, data) }
            val listener = Recorder()
            val id = vault.importMediaFile(source.toString(), listener = listener)
            assertEquals(data.size.toULong() to data.size.toULong(), listener.seen.last())
            assertTrue(listener.seen.size >= 3)

            // The Flow helper: progress, then the result.
            val events = withProgress { progress, token -> vault.importMediaFile(source.toString(), listener = progress, cancel = token) }.toList()
            val finished = events.last() as ProgressEvent.Finished<String>
            assertTrue(events.dropLast(1).all { it is ProgressEvent.Running }, events.toString())
            assertTrue(finished.result != id)

            // A token cancelled by the app's listener.
            val token = CancelToken()
            val stopper = Recorder(cancelAt = 1_000_000u, token = token)
            assertThrows<VaultException.Cancelled> { runBlocking { vault.importMediaFile(source.toString(), listener = stopper, cancel = token) } }
            assertTrue(token.isCancelled())
            assertEquals(2uL, vault.status().mediaItems)

            val cancelled = CancelToken().apply { cancel() }
            val out2 = tmp.resolve("out2.bin")
            assertThrows<VaultException.Cancelled> { runBlocking { vault.exportMedia(id, out2.toString(), cancel = cancelled) } }
            assertFalse(Files.exists(out2))
            assertEquals(data.size.toULong(), vault.exportMedia(id, out2.toString(), listener = Recorder()))
            assertArrayEquals(data, Files.readAllBytes(out2))

            // `cancellable`: cancelling the coroutine cancels the import through its token, so
            // nothing is stored. The listener holds the import at its first report until the
            // token is cancelled (or 10 s pass: then the helper is broken and the import stores).
            val before = vault.status().mediaItems
            val started = CountDownLatch(1)
            val released = CountDownLatch(1)
            val seenToken = AtomicReference<CancelToken>()
            val sawCancel = AtomicBoolean(false)
            val gate = object : ProgressListener {
                override fun onProgress(done: ULong, total: ULong?) {
                    if (started.count == 0L) return
                    started.countDown()
                    val deadline = System.nanoTime() + 10_000_000_000
                    while (seenToken.get()?.isCancelled() != true && System.nanoTime() < deadline) Thread.sleep(5)
                    sawCancel.set(seenToken.get()?.isCancelled() == true)
                    released.countDown()
                }
            }
            val importing = async(Dispatchers.Default) {
                cancellable { t ->
                    seenToken.set(t)
                    vault.importMediaFile(source.toString(), listener = gate, cancel = t)
                }
            }
            assertTrue(started.await(30, TimeUnit.SECONDS))
            importing.cancel()
            assertThrows<CancellationException> { runBlocking { importing.await() } }
            assertTrue(released.await(30, TimeUnit.SECONDS))
            assertTrue(sawCancel.get(), "cancelling the coroutine cancelled the token")
            delay(300) // the import thread ends at the listener's return
            assertEquals(before, vault.status().mediaItems)
            vault.lock()
        }
    }

    @Test
    fun `a throwing callback fails the call instead of hanging`() = runBlocking {
        Vault.create(dir, "pw").use { vault ->
            val source = tmp.resolve("a.bin").also { Files.write(it, Random.nextBytes(100_000)) }
            val throwing = object : ProgressListener {
                override fun onProgress(done: ULong, total: ULong?) = throw IllegalStateException("app bug")
            }
            val error = runCatching { withTimeout(30_000) { vault.importMediaFile(source.toString(), listener = throwing) } }.exceptionOrNull()
            assertNotNull(error)
            assertTrue(error is VaultException.Other || error is InternalException, error.toString())
            vault.lock()
        }
    }

    @Test
    fun `a released chunked import stores nothing, and rewrap after invalidation`() {
        val old = JvmKeyWrapper.generate()
        Vault.create(dir, "pw", old).use { vault ->
            vault.beginMediaImport().use { it.write("half of a photo".toByteArray()) }
            // The import thread has the vault until it ends; the next call waits for it.
            assertEquals(0uL, vault.status().mediaItems)
            val new = JvmKeyWrapper.generate()
            vault.rewrapSlot(1u, new)
            vault.lock()
            assertThrows<VaultException.WrongPassword> { Vault.unlockWithWrapper(dir, old) }
            Vault.unlockWithWrapper(dir, new).use { assertEquals(1u, it.status().unlockedBy) }
        }
    }
}
