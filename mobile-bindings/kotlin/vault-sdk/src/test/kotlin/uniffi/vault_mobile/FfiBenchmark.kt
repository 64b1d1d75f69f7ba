package uniffi.vault_mobile

import kotlinx.coroutines.runBlocking
import java.io.FileInputStream
import java.nio.file.Files
import java.nio.file.Path
import kotlin.random.Random

/**
 * The Kotlin side of scripts/bench-kotlin.sh (not a test): the per-call cost of small vault calls
 * through the FFI (the same calls as the Rust `call_baseline` example, on the same data), and
 * media import through the chunked API from a Kotlin InputStream against import by path.
 * Usage: FfiBenchmarkKt DIR MIB. Prints `kotlin <name> <value>` lines.
 */
fun main(args: Array<String>) = runBlocking {
    val dir = Path.of(args[0])
    val mib = args.getOrElse(1) { "64" }.toInt()
    Files.createDirectories(dir)
    Vault.create(dir.resolve("vault").toString(), "benchmark passphrase").use { vault ->
        for (i in 0 until 2_000) vault.addMessage("bench", "ann", "message $i about topic${i % 50} and more words")
        vault.putSecret("token", ByteArray(32) { 7 })
        perCall("secret", 20_000) { vault.secret("token") }
        perCall("search", 5_000) { vault.search("topic7", 10u) }

        val source = dir.resolve("media.bin")
        Files.newOutputStream(source).use { out -> repeat(mib) { out.write(Random.nextBytes(1 shl 20)) } }
        val bytes = mib.toDouble()
        // Warm the page cache and the JIT once, then the best of three runs of each.
        vault.importMediaFile(source.toString())
        FileInputStream(source.toFile()).use { vault.importMedia(it) }
        val byPath = best { vault.importMediaFile(source.toString()) }
        println("kotlin import_path_mib_s %.1f".format(bytes / byPath))
        for (chunk in listOf(64 shl 10, 256 shl 10, 1 shl 20)) {
            val chunked = best { FileInputStream(source.toFile()).use { vault.importMedia(it, chunkSize = chunk) } }
            println("kotlin import_chunked_${chunk shr 10}k_mib_s %.1f".format(bytes / chunked))
        }
        vault.lock()
    }
}

/** Microseconds per call of [call], after as many warm-up calls. */
private inline fun perCall(name: String, calls: Int, call: () -> Unit) {
    repeat(calls) { call() }
    val start = System.nanoTime()
    repeat(calls) { call() }
    println("kotlin $name %.2f".format((System.nanoTime() - start) / 1e3 / calls))
}

/** The shortest of three runs of [run], in seconds. */
private suspend fun best(run: suspend () -> Unit): Double = (1..3).minOf {
    val start = System.nanoTime()
    run()
    (System.nanoTime() - start) / 1e9
}
