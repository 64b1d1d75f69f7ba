package uniffi.vault_mobile

import java.net.InetAddress
import java.net.InetSocketAddress
import java.net.ServerSocket
import java.net.Socket
import java.net.SocketException
import java.util.Collections
import java.util.concurrent.atomic.AtomicLong

/**
 * A throttling TCP proxy for the tests (as mobile-bindings/tests/python/throttle_proxy.py):
 * forwards bytes both ways between its clients and [upstream], pacing each direction to a rate
 * in bytes per second shared by every connection, so a backup through it takes seconds.
 */
class ThrottlingProxy(private val upstream: InetSocketAddress) : AutoCloseable {
    /** Paces one direction; counts its bytes. */
    class Pacer {
        @Volatile
        private var rate: Long? = null
        private var next = System.nanoTime()
        val bytes = AtomicLong()

        @Synchronized
        fun setRate(bytesPerSecond: Long?) {
            rate = bytesPerSecond
            next = System.nanoTime()
        }

        fun take(n: Int) {
            bytes.addAndGet(n.toLong())
            val until = synchronized(this) {
                val r = rate ?: return
                next = maxOf(next, System.nanoTime()) + n * 1_000_000_000L / r
                next
            }
            val left = until - System.nanoTime()
            if (left > 0) Thread.sleep(left / 1_000_000, (left % 1_000_000).toInt())
        }
    }

    /** Client to server. */
    val up = Pacer()

    /** Server to client. */
    val down = Pacer()
    private val listener = ServerSocket(0, 16, InetAddress.getLoopbackAddress())
    private val sockets: MutableSet<Socket> = Collections.synchronizedSet(mutableSetOf())

    /** The proxy's `http://` address. */
    val url = "http://127.0.0.1:${listener.localPort}"

    init {
        daemon {
            while (!listener.isClosed) {
                val client = try { listener.accept() } catch (e: SocketException) { break }
                val server = try { Socket(upstream.address, upstream.port) } catch (e: Exception) { client.close(); continue }
                sockets.add(client)
                sockets.add(server)
                daemon { pump(client, server, up) }
                daemon { pump(server, client, down) }
            }
        }
    }

    /** Sets the rate of both directions (null: unlimited). */
    fun setRate(bytesPerSecond: Long?) {
        up.setRate(bytesPerSecond)
        down.setRate(bytesPerSecond)
    }

    private fun pump(source: Socket, sink: Socket, pacer: Pacer) {
        val buffer = ByteArray(16 * 1024)
        try {
            val input = source.getInputStream()
            val output = sink.getOutputStream()
            while (true) {
                val n = input.read(buffer)
                if (n < 0) break
                pacer.take(n)
                output.write(buffer, 0, n)
                output.flush()
            }
            sink.shutdownOutput() // the peer sees the end of this direction
        } catch (e: Exception) {
            runCatching { source.close() }
            runCatching { sink.close() }
        }
    }

    private fun daemon(body: () -> Unit) = Thread(body).apply { isDaemon = true }.start()

    override fun close() {
        listener.close()
        synchronized(sockets) { sockets.forEach { runCatching { it.close() } } }
    }
}
