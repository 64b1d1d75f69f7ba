package uniffi.vault_mobile

import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.buffer
import kotlinx.coroutines.flow.channelFlow
import kotlinx.coroutines.withContext
import java.io.InputStream

/**
 * Runs a long vault call (an import, an export, a backup, a restore) so that cancelling the
 * calling coroutine also cancels the work: the generated `suspend` functions stop waiting when
 * their coroutine is cancelled, but the work goes on unless its [CancelToken] is cancelled too.
 *
 * ```kotlin
 * val id = cancellable { token -> vault.importMediaFile(path, cancel = token) }
 * ```
 */
suspend fun <T> cancellable(call: suspend (cancel: CancelToken) -> T): T {
    val token = CancelToken()
    try {
        return call(token)
    } catch (e: CancellationException) {
        token.cancel()
        throw e
    }
}

/** One element of [withProgress]: progress reports, then the result. */
sealed interface ProgressEvent<out T> {
    /** [done] bytes of [total] (when known) are processed. */
    data class Running(val done: ULong, val total: ULong?) : ProgressEvent<Nothing>

    /** The call completed with [result]. */
    data class Finished<T>(val result: T) : ProgressEvent<T>
}

/**
 * A long vault call as a cold [Flow]: collecting it starts the call, emits its progress
 * (conflated: a slow collector sees the latest report) and ends with [ProgressEvent.Finished].
 * An error of the call is thrown by `collect`. Cancelling the collector cancels the call through
 * its [CancelToken].
 *
 * ```kotlin
 * withProgress { listener, token -> backup.run(listener, token) }.collect { event ->
 *     when (event) {
 *         is ProgressEvent.Running -> showProgress(event.done, event.total)
 *         is ProgressEvent.Finished -> showDone(event.result.generation)
 *     }
 * }
 * ```
 */
fun <T> withProgress(call: suspend (listener: ProgressListener, cancel: CancelToken) -> T): Flow<ProgressEvent<T>> =
    channelFlow {
        // Called on the vault's worker thread: never blocks and never throws.
        val listener = object : ProgressListener {
            override fun onProgress(done: ULong, total: ULong?) {
                trySend(ProgressEvent.Running(done, total))
            }
        }
        send(ProgressEvent.Finished(cancellable { token -> call(listener, token) }))
    }.buffer(Channel.CONFLATED)

/**
 * Imports media from [source] through the chunked-import API ([Vault.beginMediaImport]), in
 * chunks of [chunkSize] bytes, on [Dispatchers.IO]; returns the media id. Nothing is stored when
 * reading [source] fails (the exception is rethrown) or the coroutine is cancelled. [source] is
 * not closed.
 */
suspend fun Vault.importMedia(
    source: InputStream,
    conversation: String? = null,
    message: Long? = null,
    chunkSize: Int = DEFAULT_CHUNK,
): String {
    require(chunkSize in 1..MAX_CHUNK) { "chunkSize is 1 to $MAX_CHUNK bytes" }
    return withContext(Dispatchers.IO) {
        beginMediaImport(conversation, message).use { import ->
            try {
                val buffer = ByteArray(chunkSize)
                while (true) {
                    val n = source.readNBytes(buffer, 0, chunkSize)
                    if (n == 0) break
                    // The bindings copy the bytes when called: the buffer can be reused.
                    import.write(if (n == chunkSize) buffer else buffer.copyOf(n))
                    if (n < chunkSize) break
                }
                import.finish()
            } catch (e: Throwable) {
                runCatching { import.cancel() }
                throw e
            }
        }
    }
}

/**
 * The plaintext of this media item as an [InputStream] reading [chunkSize] bytes per call into
 * the vault (at most 1 MiB). A tampered segment throws [VaultException.CorruptOrTampered] from
 * `read`. Closing the stream does not close the reader.
 */
fun MediaReader.inputStream(chunkSize: Int = MAX_CHUNK): InputStream {
    require(chunkSize in 1..MAX_CHUNK) { "chunkSize is 1 to $MAX_CHUNK bytes" }
    val reader = this
    return object : InputStream() {
        private var position = 0uL
        private var chunk = ByteArray(0)
        private var index = 0

        private fun fill(): Boolean {
            if (index < chunk.size) return true
            chunk = reader.read(position, chunkSize.toULong())
            index = 0
            position += chunk.size.toULong()
            return chunk.isNotEmpty()
        }

        override fun read(): Int = if (fill()) chunk[index++].toInt() and 0xff else -1

        override fun read(b: ByteArray, off: Int, len: Int): Int {
            java.util.Objects.checkFromIndexSize(off, len, b.size)
            if (len == 0) return 0
            if (!fill()) return -1
            val n = minOf(len, chunk.size - index)
            chunk.copyInto(b, off, index, index + n)
            index += n
            return n
        }

        override fun available(): Int = chunk.size - index
    }
}

private const val DEFAULT_CHUNK = 256 * 1024
private const val MAX_CHUNK = 1024 * 1024
