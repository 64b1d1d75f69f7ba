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
 * The built `backup-server` binary. When it is not built the test is skipped, unless the run
 * requires the server (`-Dvault.requireServer=true`, as scripts/test.sh runs it): then it fails.
 */
fun backupServerBinary(): Path {
    val binary = profileDir.resolve("backup-server")
    if (!Files.isExecutable(binary)) {
        val why = "$binary is not built: cargo build -p backup-server --bin backup-server"
        if (System.getProperty("vault.requireServer") == "true") fail<Unit>(why)
        assumeTrue(false, why)
    }
    return binary
}

/**
 * Runs a `backup-server` maintenance command (e.g. `ticket-keygen`, `issue-ticket`) and returns
 * its standard output, trimmed, as the Python tests' `server_command` does; fails the test when
 * the command fails.
 */
fun serverCommand(vararg args: String): String {
    val command = "backup-server ${args.joinToString(" ")}"
    val errors = Files.createTempFile("backup-server-command", ".err")
    try {
        val process = ProcessBuilder(backupServerBinary().toString(), *args)
            .redirectError(errors.toFile()).start()
        val out = process.inputStream.bufferedReader().readText()
        if (!process.waitFor(60, TimeUnit.SECONDS)) {
            process.destroyForcibly()
            fail<Unit>("$command did not finish")
        }
        if (process.exitValue() != 0) {
            fail<Unit>("$command exited with ${process.exitValue()}: ${Files.readString(errors).trim()}")
        }
        return out.trim()
    } finally {
        Files.deleteIfExists(errors)
    }
}

/**
 * A `backup-server` process on a free loopback port with its data in [data], started as the
 * Python tests start it (rate limits off), with [extra] arguments appended. When the binary is
 * not built the test is skipped or fails, as [backupServerBinary] says.
 */
class BackupServer(val data: Path, extra: List<String> = emptyList()) : AutoCloseable {
    private val process: Process
    val url: String

    init {
        val binary = backupServerBinary()
        process = ProcessBuilder(
            listOf(
                binary.toString(), "--listen", "127.0.0.1:0", "--data-dir", data.toString(),
                "--rate-limit-per-ip", "0", "--rate-limit-per-account", "0",
            ) + extra,
        ).redirectError(data.resolveSibling("${data.fileName}.server-errors").toFile()).start()
        val lines = process.inputStream.bufferedReader()
        var found: String? = null
        while (found == null) {
            val line = lines.readLine() ?: break
            if (line.startsWith("backup-server listening on ")) found = line.substringAfterLast(' ')
        }
        url = found ?: run {
            process.destroyForcibly()
            process.waitFor(10, TimeUnit.SECONDS)
            val errors = data.resolveSibling("${data.fileName}.server-errors")
            fail("the backup server did not say where it listens: ${Files.readString(errors).trim()}")
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
