package uniffi.vault_mobile

import org.junit.jupiter.api.Assertions.fail
import org.junit.jupiter.api.Assumptions.assumeTrue
import java.nio.file.Files
import java.nio.file.Path
import java.util.concurrent.TimeUnit

/** Where the built library and binaries are (set by the pom from `vault.profile.dir`). */
val profileDir: Path = Path.of(System.getProperty("vault.profileDir") ?: "../../../target/debug").toAbsolutePath()

/** A [PlatformKeyWrapper] that counts calls and wraps like [base], for tests. */
class CountingWrapper(private val base: PlatformKeyWrapper) : PlatformKeyWrapper by base {
    @Volatile
    var calls = 0

    override fun wrap(plaintext: ByteArray): ByteArray = base.wrap(plaintext).also { calls++ }

    override fun unwrap(wrapped: ByteArray): ByteArray = base.unwrap(wrapped).also { calls++ }
}

/** Has the label of [base] and throws [error] from every unwrap, as a failing keystore would. */
class FailingWrapper(private val base: PlatformKeyWrapper, private val error: () -> Exception) :
    PlatformKeyWrapper by base {
    override fun unwrap(wrapped: ByteArray): ByteArray = throw error()
}

/** Records progress reports; cancels [token] once [cancelAt] bytes are done. */
class Recorder(private val cancelAt: ULong? = null, private val token: CancelToken? = null) : ProgressListener {
    val seen: MutableList<Pair<ULong, ULong?>> = java.util.Collections.synchronizedList(mutableListOf())

    override fun onProgress(done: ULong, total: ULong?) {
        seen.add(done to total)
        if (cancelAt != null && done >= cancelAt) token?.cancel()
    }
}

/**
 * A `backup-server` process on a free loopback port with its data in [data], started as the
 * Python tests start it. When the binary is not built the test is skipped, unless the run
 * requires the server (`-Dvault.requireServer=true`, as scripts/test.sh runs it): then it fails.
 */
class BackupServer(val data: Path) : AutoCloseable {
    private val process: Process
    val url: String

    init {
        val binary = profileDir.resolve("backup-server")
        if (!Files.isExecutable(binary)) {
            val why = "$binary is not built: cargo build -p backup-server --bin backup-server"
            if (System.getProperty("vault.requireServer") == "true") fail<Unit>(why)
            assumeTrue(false, why)
        }
        process = ProcessBuilder(
            binary.toString(), "--listen", "127.0.0.1:0", "--data-dir", data.toString(),
            "--rate-limit-per-ip", "0", "--rate-limit-per-account", "0",
        ).redirectError(ProcessBuilder.Redirect.DISCARD).start()
        val lines = process.inputStream.bufferedReader()
        var found: String? = null
        while (found == null) {
            val line = lines.readLine() ?: break
            if (line.startsWith("backup-server listening on ")) found = line.substringAfterLast(' ')
        }
        url = found ?: run {
            process.destroyForcibly()
            fail("the backup server did not say where it listens")
        }
        // Keep draining its output so it never blocks on a full pipe.
        Thread { lines.lineSequence().forEach { _ -> } }.apply { isDaemon = true }.start()
    }

    /** Kills the process (as a crash would) and waits for it. */
    fun stop() {
        process.destroyForcibly()
        process.waitFor(10, TimeUnit.SECONDS)
    }

    override fun close() = stop()
}
